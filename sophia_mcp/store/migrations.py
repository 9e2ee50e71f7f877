"""The store's schema, as the list of migrations that build it: entry N upgrades version N to N+1."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

# Each entry upgrades the schema by one version; never edit a shipped entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE clients (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        domain TEXT,
        industry TEXT,
        segment TEXT,
        city TEXT,
        units_managed INTEGER,
        arr REAL,
        csm_name TEXT,
        csm_email TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX clients_name ON clients (name COLLATE NOCASE);
    CREATE INDEX clients_domain ON clients (domain COLLATE NOCASE);

    CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        client_id TEXT REFERENCES clients (id),
        first_name TEXT,
        last_name TEXT,
        email TEXT,
        title TEXT,
        phone TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX contacts_client ON contacts (client_id);
    CREATE INDEX contacts_email ON contacts (email COLLATE NOCASE);

    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        started TEXT NOT NULL,
        duration_s INTEGER NOT NULL,
        direction TEXT,
        scope TEXT,
        url TEXT,
        client_id TEXT REFERENCES clients (id),
        client_name TEXT,
        source TEXT NOT NULL,
        raw TEXT NOT NULL,
        imported_at TEXT NOT NULL
    );
    CREATE INDEX calls_started ON calls (started DESC, id DESC);
    CREATE INDEX calls_client ON calls (client_id, started DESC);

    CREATE TABLE call_parties (
        call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
        party_id TEXT NOT NULL,
        name TEXT,
        email TEXT,
        title TEXT,
        affiliation TEXT NOT NULL,
        speaker_id TEXT,
        user_id TEXT,
        PRIMARY KEY (call_id, party_id)
    );

    CREATE TABLE transcripts (
        call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
        monologues TEXT NOT NULL,
        sentence_count INTEGER NOT NULL,
        imported_at TEXT NOT NULL
    );

    CREATE TABLE call_mentions (
        call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
        competitor TEXT NOT NULL,
        mentions INTEGER NOT NULL,
        PRIMARY KEY (call_id, competitor)
    );
    CREATE INDEX call_mentions_competitor ON call_mentions (competitor COLLATE NOCASE);

    CREATE TABLE call_analyses (
        call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
        client_id TEXT,
        started TEXT NOT NULL,
        analyst TEXT NOT NULL,
        external_sentiment REAL,
        internal_ratio REAL,
        analysis TEXT NOT NULL,
        analyzed_at TEXT NOT NULL
    );
    CREATE INDEX call_analyses_client ON call_analyses (client_id, started DESC);

    CREATE TABLE client_health (
        client_id TEXT PRIMARY KEY,
        score REAL NOT NULL,
        components TEXT NOT NULL,
        explanation TEXT NOT NULL,
        as_of TEXT NOT NULL,
        source_call_id TEXT,
        run_id TEXT,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE client_health_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        score REAL NOT NULL,
        components TEXT NOT NULL,
        explanation TEXT NOT NULL,
        as_of TEXT NOT NULL,
        source_call_id TEXT,
        run_id TEXT,
        recorded_at TEXT NOT NULL
    );
    CREATE INDEX client_health_history_client ON client_health_history (client_id, recorded_at);

    CREATE TABLE workflow_runs (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        subject TEXT,
        input TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        output TEXT,
        error TEXT,
        pid INTEGER,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX workflow_runs_workflow ON workflow_runs (workflow, started_at DESC);

    CREATE TABLE run_steps (
        run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
        detail TEXT,
        error TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms REAL,
        PRIMARY KEY (run_id, seq)
    );

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        external_ref TEXT,
        run_id TEXT,
        created_at TEXT NOT NULL,
        claimed_at TEXT,
        delivered_at TEXT
    );
    CREATE INDEX outbox_status ON outbox (status, id);
    """,
    # 2: what enrichment and the lead score add to a contact; firmographics; the enrichment ledger.
    """
    ALTER TABLE contacts ADD COLUMN city TEXT;
    ALTER TABLE contacts ADD COLUMN state TEXT;
    ALTER TABLE contacts ADD COLUMN country TEXT;
    ALTER TABLE contacts ADD COLUMN linkedin_url TEXT;
    ALTER TABLE contacts ADD COLUMN seniority TEXT;
    ALTER TABLE contacts ADD COLUMN lead_score REAL;
    ALTER TABLE contacts ADD COLUMN lead_grade TEXT;
    CREATE INDEX contacts_updated ON contacts (updated_at);

    CREATE TABLE firmographics (
        domain TEXT PRIMARY KEY COLLATE NOCASE,
        name TEXT,
        industry TEXT,
        employees INTEGER,
        units_managed INTEGER,
        annual_revenue REAL,
        city TEXT,
        state TEXT,
        country TEXT,
        founded_year INTEGER,
        linkedin_url TEXT,
        technologies TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE enrichments (
        crm TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('enriched', 'written', 'unchanged', 'failed')),
        person TEXT,
        changes TEXT,
        score TEXT,
        error TEXT,
        run_id TEXT,
        enriched_at TEXT NOT NULL,
        finished_at TEXT,
        PRIMARY KEY (crm, contact_id)
    );
    """,
    # 3: the local vector index (one row per vector) and the model that built it.
    """
    CREATE TABLE vector_model (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        model TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );

    CREATE TABLE vectors (
        id TEXT PRIMARY KEY,
        vector BLOB NOT NULL,
        metadata TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 4: the knowledge base: documents, their chunks, and a full-text index over the chunks.
    """
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        format TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        doc_date TEXT,
        content_hash TEXT NOT NULL,
        chars INTEGER NOT NULL,
        chunk_count INTEGER NOT NULL,
        embedding_model TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX documents_type ON documents (type, updated_at DESC);

    CREATE TABLE chunks (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        section TEXT NOT NULL,
        text TEXT NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        UNIQUE (document_id, seq)
    );

    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        section, text, content = 'chunks', content_rowid = 'pk', tokenize = 'porter unicode61'
    );

    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, section, text) VALUES (new.pk, new.section, new.text);
    END;

    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, section, text) VALUES ('delete', old.pk, old.section, old.text);
    END;
    """,
    # 5: alerts deduplicated by their sender's key within a window; the local issue tracker; the ledger of issues
    # created under an idempotency key (whatever the tracker).
    """
    ALTER TABLE outbox ADD COLUMN dedupe_key TEXT;
    CREATE INDEX outbox_dedupe ON outbox (dedupe_key, id);

    CREATE TABLE tracker_teams (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        issue_count INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO tracker_teams (id, key, name) VALUES
        ('team-cs', 'CS', 'Customer Success'), ('team-eng', 'ENG', 'Engineering'), ('team-sales', 'SALES', 'Sales');

    CREATE TABLE tracker_issues (
        id TEXT PRIMARY KEY,
        identifier TEXT NOT NULL UNIQUE,
        team_id TEXT NOT NULL REFERENCES tracker_teams (id),
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 4),
        state TEXT NOT NULL,
        assignee TEXT,
        labels TEXT NOT NULL DEFAULT '[]',
        due_date TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX tracker_issues_team ON tracker_issues (team_id, updated_at DESC);

    CREATE TABLE issue_keys (
        key TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        issue_id TEXT,
        identifier TEXT,
        created_at TEXT NOT NULL
    );
    """,
    # 6: meeting invites; schedules and their runs; bug reports and the issues they became.
    """
    CREATE TABLE meetings (
        uid TEXT PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        organizer TEXT NOT NULL,
        attendees TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        ics TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX meetings_start ON meetings (starts_at);

    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        spec TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        next_run_at TEXT NOT NULL,
        last_run_at TEXT,
        lease_owner TEXT,
        lease_until TEXT,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE schedule_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule TEXT NOT NULL,
        due_at TEXT NOT NULL,
        missed INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        run_id TEXT,
        summary TEXT,
        error TEXT
    );
    CREATE INDEX schedule_runs_schedule ON schedule_runs (schedule, id DESC);

    CREATE TABLE bug_reports (
        issue_key TEXT PRIMARY KEY,
        issue_id TEXT,
        reporter TEXT NOT NULL,
        channel TEXT NOT NULL,
        last_state TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 7: churn: each client's features as of a date, and (once known) whether it renewed or churned.
    """
    CREATE TABLE client_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        as_of TEXT NOT NULL,
        features TEXT NOT NULL,
        outcome TEXT CHECK (outcome IN ('renewed', 'churned')),
        source TEXT NOT NULL,
        UNIQUE (client_id, as_of)
    );
    CREATE INDEX client_snapshots_outcome ON client_snapshots (outcome);
    """,
    # 8: which process claimed an outbox entry, so a claim by a process that died is released at once.
    """
    ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
    """,
    # 9: vectors of a document version that a process is writing or removing, noted first: what one that dies
    # midway leaves is removed by the next. Vectors left so before this (no document version of theirs) go now.
    """
    CREATE TABLE pending_vectors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        document_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        chunk_count INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('writing', 'removing')),
        pid INTEGER,
        owner TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX pending_vectors_version ON pending_vectors (document_id, content_hash);
    DELETE FROM vectors WHERE id NOT IN (
        SELECT c.document_id || '#' || substr(d.content_hash, 1, 10) || '.' || c.seq
        FROM chunks c JOIN documents d ON d.id = c.document_id
    );
    """,
    # 10: one health history row per client and source call: re-analysing a call replaced its row's figures
    # instead of appending the same point again (which weighed twice in the trend). The newest of each is kept.
    """
    DELETE FROM client_health_history WHERE source_call_id IS NOT NULL AND id NOT IN (
        SELECT max(id) FROM client_health_history WHERE source_call_id IS NOT NULL GROUP BY client_id, source_call_id
    );
    CREATE UNIQUE INDEX IF NOT EXISTS client_health_history_source
        ON client_health_history (client_id, source_call_id);
    """,
    # 11: how a call was linked to its client (or why it was not); clients found by a name key that ignores case
    # and punctuation (filled when calls are linked); each client's last health alert, so alerts follow changes.
    """
    ALTER TABLE calls ADD COLUMN link TEXT;
    ALTER TABLE calls ADD COLUMN unlinked_reason TEXT;
    CREATE INDEX calls_unlinked ON calls (started DESC, id DESC) WHERE client_id IS NULL;
    ALTER TABLE clients ADD COLUMN name_key TEXT;
    CREATE INDEX clients_name_key ON clients (name_key);

    CREATE TABLE health_alert_state (
        client_id TEXT PRIMARY KEY,
        alert_key TEXT NOT NULL,
        score REAL NOT NULL,
        components TEXT NOT NULL,
        call_id TEXT NOT NULL,
        call_started TEXT NOT NULL,
        recovered_score REAL,
        updated_at TEXT NOT NULL
    );
    """,
    # 12: every write to a vector (from any process, any code path) appends its id to a change log, so an index in
    # memory catches up by reading only what changed since the last change it saw, and a commit to any other table
    # costs it nothing. The oldest changes are pruned; `vector_changes_pruned` says up to which one, so an index
    # that saw none of the kept ones reloads whole. It may run again harmlessly (a test rewinds the schema).
    """
    CREATE TABLE IF NOT EXISTS vector_changes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        vector_id TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS vector_changes_pruned (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        through INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO vector_changes_pruned (id, through) VALUES (1, 0);
    CREATE TRIGGER IF NOT EXISTS vectors_inserted AFTER INSERT ON vectors BEGIN
        INSERT INTO vector_changes (vector_id) VALUES (new.id);
    END;
    CREATE TRIGGER IF NOT EXISTS vectors_updated AFTER UPDATE ON vectors BEGIN
        INSERT INTO vector_changes (vector_id) VALUES (old.id);
        INSERT INTO vector_changes (vector_id) SELECT new.id WHERE new.id IS NOT old.id;
    END;
    CREATE TRIGGER IF NOT EXISTS vectors_deleted AFTER DELETE ON vectors BEGIN
        INSERT INTO vector_changes (vector_id) VALUES (old.id);
    END;
    """,
    # 13: the inbox: every event from outside (a provider's webhook, a polling connector), kept once by its source's
    # own id, then processed by a worker that holds a lease on it while it works (a worker that dies leaves it to
    # the next), retries a failure with backoff and gives up (dead, kept for a person) after the last attempt.
    # Beside it each polling connector's cursor: how far it has read. It may run again harmlessly (a test rewinds
    # the schema).
    """
    CREATE TABLE IF NOT EXISTS inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        source TEXT NOT NULL,
        event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        via TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'working', 'done', 'ignored', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        deliveries INTEGER NOT NULL DEFAULT 1,
        received_at TEXT NOT NULL,
        next_at TEXT NOT NULL,
        claimed_by TEXT,
        claimed_until TEXT,
        finished_at TEXT,
        last_error TEXT,
        result TEXT,
        UNIQUE (source, event_id)
    );
    CREATE INDEX IF NOT EXISTS inbox_due ON inbox (next_at) WHERE status IN ('pending', 'working');
    CREATE INDEX IF NOT EXISTS inbox_status ON inbox (status, id);
    CREATE TABLE IF NOT EXISTS connector_cursors (
        name TEXT PRIMARY KEY,
        position TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 14: an issue is found by its identifier whatever its case (eng-12 is ENG-12): an index that ignores case, so
    # finding one no longer reads every issue.
    """
    CREATE INDEX IF NOT EXISTS tracker_issues_identifier ON tracker_issues (identifier COLLATE NOCASE);
    """,
    # The host of each run's process and of each outbox claim's sender: a process id names a process only on its own
    # host, and a store on PostgreSQL is shared by many, so a start reaps only the dead processes of its own host
    # (rows from before this say no host: they are of the one host a SQLite file had).
    """
    ALTER TABLE workflow_runs ADD COLUMN host TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_host TEXT;
    """,
    # The healing watch: each step's outcome in order, with why a failed one failed (by the error's type), and
    # the incidents it opens, each with its diagnosis and the remediations applied while it lasts.
    """
    CREATE TABLE IF NOT EXISTS step_outcomes (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        workflow TEXT NOT NULL,
        step TEXT NOT NULL,
        cause TEXT,
        service TEXT,
        error TEXT,
        at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS step_outcomes_step ON step_outcomes (workflow, step, id);
    CREATE TABLE IF NOT EXISTS incidents (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        workflow TEXT NOT NULL,
        step TEXT NOT NULL,
        cause TEXT NOT NULL,
        service TEXT,
        status TEXT NOT NULL,
        error_rate REAL NOT NULL,
        diagnosis TEXT NOT NULL,
        remediations TEXT NOT NULL,
        issue_key TEXT,
        summary TEXT,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        closed_at TEXT
    );
    CREATE INDEX IF NOT EXISTS incidents_status ON incidents (status, id);
    """,
    # The bug's path: whose turn it is in the assignees' rotation (shared by processes, kept across restarts), who
    # each report went to, the steps taken for it once (a comment, a message), and the local tracker's links and
    # comments.
    """
    CREATE TABLE IF NOT EXISTS bug_rotation (
        name TEXT PRIMARY KEY,
        turn INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS bug_assignments (
        issue_key TEXT PRIMARY KEY,
        assignee TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS tracker_links (
        issue_id TEXT NOT NULL,
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (issue_id, url)
    );
    CREATE TABLE IF NOT EXISTS tracker_comments (
        key TEXT PRIMARY KEY,
        issue_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS tracker_comments_issue ON tracker_comments (issue_id, created_at);
    """,
    # Workflows designed from a request in words: the current deployment of each (a schedule-triggered one with
    # its next fire time) and every version deployed.
    """
    CREATE TABLE IF NOT EXISTS designed_workflows (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        version INTEGER NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        request TEXT NOT NULL,
        spec TEXT NOT NULL,
        event_kind TEXT,
        next_at TEXT,
        deployed_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS designed_workflows_due ON designed_workflows (next_at) WHERE enabled = 1;
    CREATE TABLE IF NOT EXISTS designed_workflow_versions (
        workflow_id INTEGER NOT NULL REFERENCES designed_workflows (id),
        version INTEGER NOT NULL,
        spec TEXT NOT NULL,
        deployed_at TEXT NOT NULL,
        PRIMARY KEY (workflow_id, version)
    );
    """,
    # 19: PostgreSQL's full-text index without a pending list (below); SQLite's FTS5 index needs nothing.
    "",
]


def statements(script: str) -> Iterator[str]:
    """The complete statements of a script, one by one (a trigger's body keeps its inner semicolons)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip().rstrip(";").strip():
        yield pending


# -- PostgreSQL -------------------------------------------------------------------------------------------------
# The entries above are SQLite's; PostgreSQL applies each one translated by `to_postgres` (a mechanical rewrite of
# types and spellings), except the few below that have no mechanical translation (FTS5, SQLite triggers): those it
# replaces whole, by version number.
_TYPE_REWRITES = [
    # A generated id: SQLite's rowid alias, PostgreSQL's identity column (explicit ids are still accepted).
    (
        re.compile(r"\bINTEGER PRIMARY KEY(?:\s+AUTOINCREMENT)?(?=\s*(?:,|\n|\)))"),
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    ),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),  # SQLite's integers are 64-bit
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bAUTOINCREMENT\b"), ""),
]
_NOCASE_COLUMN = re.compile(r"([\w.]+)\s+COLLATE\s+NOCASE")
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)
_CREATE_INDEX = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\b", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\b", re.IGNORECASE)


def to_postgres(statement: str) -> str:
    """One SQLite migration statement in PostgreSQL's spelling: identity ids, 64-bit integers, DOUBLE PRECISION,
    BYTEA, columns added IF NOT EXISTS; an index on `col COLLATE NOCASE` becomes one on `lower(col)` (the queries
    compare lowered); `INSERT OR IGNORE` becomes `ON CONFLICT DO NOTHING`."""
    text = statement.strip().rstrip(";").strip()
    if _CREATE_TABLE.match(text) or text.upper().startswith("ALTER TABLE"):
        for pattern, replacement in _TYPE_REWRITES:
            text = pattern.sub(replacement, text)
        text = re.sub(r"\s+COLLATE\s+NOCASE", "", text)
        # Every added column may be added again (a schema rewound in a test, a migration retried): IF NOT EXISTS.
        text = re.sub(r"\bADD\s+COLUMN\s+(?!IF\b)", "ADD COLUMN IF NOT EXISTS ", text, flags=re.IGNORECASE)
    elif _CREATE_INDEX.match(text):
        text = _NOCASE_COLUMN.sub(r"lower(\1)", text)
    elif _INSERT_OR_IGNORE.match(text):
        text = _INSERT_OR_IGNORE.sub("INSERT INTO", text) + " ON CONFLICT DO NOTHING"
    return text


POSTGRES_OVERRIDES: dict[int, list[str]] = {
    # 4: the knowledge base. FTS5 has no PostgreSQL twin: the chunks carry a generated tsvector (section weighted
    # above text, as bm25's weights 2:1 do) under a GIN index, and no triggers are needed to keep it.
    4: [to_postgres(s) for s in statements(MIGRATIONS[3].split("CREATE VIRTUAL TABLE")[0])]
    + [
        """
        ALTER TABLE chunks ADD COLUMN IF NOT EXISTS fts tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('english', section), 'A') || setweight(to_tsvector('english', text), 'B')
        ) STORED
        """,
        "CREATE INDEX IF NOT EXISTS chunks_fts ON chunks USING GIN (fts)",
    ],
    # 12: the vector change log, kept by PL/pgSQL triggers.
    12: [
        "CREATE TABLE IF NOT EXISTS vector_changes (seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "vector_id TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS vector_changes_pruned (id BIGINT PRIMARY KEY CHECK (id = 1), "
        "through BIGINT NOT NULL)",
        "INSERT INTO vector_changes_pruned (id, through) VALUES (1, 0) ON CONFLICT DO NOTHING",
        """
        CREATE OR REPLACE FUNCTION vectors_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                INSERT INTO vector_changes (vector_id) VALUES (OLD.id);
            END IF;
            IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
                INSERT INTO vector_changes (vector_id) VALUES (NEW.id);
            END IF;
            RETURN NULL;
        END $$
        """,
        "CREATE OR REPLACE TRIGGER vectors_changed AFTER INSERT OR UPDATE OR DELETE ON vectors "
        "FOR EACH ROW EXECUTE FUNCTION vectors_changed()",
    ],
    # 19: the chunks' GIN index takes each insert into its tree at once (fastupdate off). With fastupdate on, inserts
    # pile up in an unsorted pending list (up to 4 MB) until a vacuum, which autovacuum starts only after a fifth of
    # the table is new; every word a search looks up reads the whole list: at 10k chunks written by ingests, 107
    # pages a word and the full-text step 28 ms p50 instead of 7. The list left so far is merged now.
    19: [
        "ALTER INDEX chunks_fts SET (fastupdate = off)",
        "SELECT gin_clean_pending_list('chunks_fts'::regclass)",
    ],
}


def postgres_statements(number: int) -> list[str]:
    """The statements that bring a PostgreSQL store to version `number` (1-based, as SQLite's user_version)."""
    if number in POSTGRES_OVERRIDES:
        return POSTGRES_OVERRIDES[number]
    return [to_postgres(s) for s in statements(MIGRATIONS[number - 1])]
