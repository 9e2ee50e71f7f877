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
