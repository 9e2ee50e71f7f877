"""Read-only SQL from a model or a person: parsed with sqlglot and refused unless it is one SELECT over allowed
tables, then given a row limit.

Refused: more than one statement, anything but SELECT (and UNION/INTERSECT/EXCEPT of SELECTs, WITH included),
SELECT ... INTO, a table not on the list (CTE names excepted), table-valued functions (pragma_table_info),
and functions that reach outside the database (load_extension, readfile, ...). The caller also runs the
statement on a read-only connection with a timeout: this check says what is wrong; the connection enforces it.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from sophia_mcp.errors import InvalidInput

FORBIDDEN_FUNCTIONS = frozenset(
    {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "sqlite_offset", "system", "sleep"}
)
FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Merge, exp.Command, exp.Pragma,
    exp.Into, exp.Attach, exp.Detach, exp.Transaction, exp.Commit, exp.Rollback, exp.Copy, exp.Set, exp.Use,
    exp.LoadData, exp.TruncateTable, exp.Grant,
)  # fmt: skip


def check_select(sql: str, allowed_tables: Collection[str], dialect: str = "sqlite") -> exp.Query:
    """The statement, parsed, if it is a single read-only SELECT over `allowed_tables`; else InvalidInput saying
    what to change."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise InvalidInput("The query is empty; write one SELECT statement")
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except ParseError as exc:
        first = str(exc).splitlines()[0][:200]
        raise InvalidInput(f"The query does not parse as SQL: {first}") from None
    if len(statements) != 1:
        raise InvalidInput(f"Send one statement, not {len(statements)}: only a single SELECT runs")
    [tree] = statements
    if not isinstance(tree, exp.Query) or not _only_selects(tree):
        raise InvalidInput(f"Only SELECT runs here, not {tree.key.upper()}: the warehouse is read-only")
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise InvalidInput(f"{node.key.upper()} is not allowed: only a plain SELECT runs")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in FORBIDDEN_FUNCTIONS or name.startswith(("pragma", "sqlite_")):
                raise InvalidInput(f"The function {name}() is not allowed here")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    allowed = {t.lower() for t in allowed_tables}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if not name or not isinstance(table.this, exp.Identifier):
            raise InvalidInput("Table-valued functions are not allowed; select from the tables themselves")
        if table.db or table.catalog:
            raise InvalidInput(f"Name tables without a schema or database ({table.sql(dialect)})")
        if name not in allowed and name not in ctes:
            raise InvalidInput(
                f"The table {table.name!r} is not open to queries; these are: {', '.join(sorted(allowed))}"
            )
    return tree


def _only_selects(tree: object) -> bool:
    if isinstance(tree, exp.Select):
        return True
    if isinstance(tree, exp.SetOperation):
        return _only_selects(tree.left) and _only_selects(tree.right)
    if isinstance(tree, exp.Subquery):
        return _only_selects(tree.this)
    return False


def limited(tree: exp.Query, limit: int, dialect: str = "sqlite") -> str:
    """The statement wrapped to return at most `limit` + 1 rows (one more says the answer was cut)."""
    return exp.select("*").from_(tree.subquery("q")).limit(limit + 1).sql(dialect)
