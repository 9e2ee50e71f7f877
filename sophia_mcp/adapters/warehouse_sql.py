"""The warehouse statements both backends run as they are: the same text on SQLite and on Snowflake.

Plain SQL with `?` parameters and unquoted names (SQLite ignores their case; Snowflake upper-cases them). Only
the upserts differ by dialect (SQLite's ON CONFLICT, Snowflake's MERGE) and live with their adapters.
"""

ANALYSIS_OF_CALL = "SELECT ANALYSIS FROM CALL_ANALYSES WHERE CALL_ID = ?"

ANALYSES_OF_CLIENT_SINCE = (
    "SELECT ANALYSIS FROM CALL_ANALYSES WHERE CLIENT_ID = ? AND STARTED >= ? ORDER BY STARTED DESC"
)

HEALTH_OF_CLIENT = (
    "SELECT CLIENT_ID, SCORE, COMPONENTS, EXPLANATION, AS_OF, SOURCE_CALL_ID, RUN_ID FROM CLIENT_HEALTH "
    "WHERE CLIENT_ID = ?"
)


def scores_of_clients(count: int) -> str:
    """Current health scores of `count` clients, in one statement."""
    return f"SELECT CLIENT_ID, SCORE FROM CLIENT_HEALTH WHERE CLIENT_ID IN ({', '.join('?' * count)})"


ALL_SCORES = "SELECT CLIENT_ID, SCORE FROM CLIENT_HEALTH"

# The analyses of calls in a period, newest first (of one client, when one is given): the strategic query's calls.
ANALYSES_IN_PERIOD = (
    "SELECT call_id, client_id, started, analysis FROM call_analyses WHERE (? IS NULL OR client_id = ?) "
    "AND started >= ? AND (? IS NULL OR started < ?) ORDER BY started DESC LIMIT 200"
)

# The named metrics and the client check before one (`workflows.analytics`): written in SQLite's dialect with `?`
# parameters, checked by `sql_guard` and written out by sqlglot in the warehouse's dialect.
CLIENT_BY_ID = "SELECT id FROM clients WHERE id = ?"

AT_RISK_CLIENTS = """
        SELECT c.id AS client_id, c.name, c.segment, c.arr, c.csm_name, h.score AS health, h.as_of
        FROM client_health h JOIN clients c ON c.id = h.client_id
        WHERE h.score < ? AND (? IS NULL OR c.id = ?) ORDER BY h.score
        """

CLIENT_HEALTH = """
        SELECT c.id AS client_id, c.name, c.segment, c.arr, c.csm_name, h.score AS health, h.as_of
        FROM client_health h JOIN clients c ON c.id = h.client_id WHERE (? IS NULL OR c.id = ?) ORDER BY h.score
        """

HEALTH_TREND = """
        SELECT DATE(as_of) AS day, COUNT(DISTINCT client_id) AS clients, AVG(score) AS avg_health,
            COUNT(DISTINCT CASE WHEN score < ? THEN client_id END) AS under_threshold
        FROM client_health_history
        WHERE as_of >= ? AND (? IS NULL OR as_of < ?) AND (? IS NULL OR client_id = ?)
        GROUP BY DATE(as_of) ORDER BY day DESC
        """

REVENUE_BY_SEGMENT = """
        SELECT COALESCE(c.segment, 'unknown') AS segment, COUNT(*) AS clients, SUM(c.arr) AS arr,
            AVG(h.score) AS avg_health, SUM(CASE WHEN h.score < ? THEN c.arr ELSE 0 END) AS arr_at_risk
        FROM clients c LEFT JOIN client_health h ON h.client_id = c.id
        GROUP BY COALESCE(c.segment, 'unknown') ORDER BY arr DESC
        """

COMPETITOR_MENTIONS = """
        SELECT m.competitor, SUM(m.mentions) AS mentions, COUNT(*) AS calls, COUNT(DISTINCT k.client_id) AS clients
        FROM call_mentions m JOIN calls k ON k.id = m.call_id
        WHERE k.started >= ? AND (? IS NULL OR k.started < ?) AND (? IS NULL OR k.client_id = ?)
        GROUP BY m.competitor ORDER BY mentions DESC
        """
