"""Read-only SQL from a model or a person: parsed with sqlglot and refused unless it is one SELECT over allowed
tables that calls only the functions an analyst needs, then given a row limit.

Refused: more than one statement, anything but SELECT (and UNION/INTERSECT/EXCEPT of SELECTs, WITH included),
SELECT ... INTO, a table not on the list, `x IN table`, table-valued functions (pragma_table_info, json_each),
and every function not in `ANALYST_FUNCTIONS` (load_extension, readfile, zeroblob, randomblob, printf, ...).

Each table reference is resolved in its own scope (sqlglot's scope module): a name is a CTE only where that CTE is
visible; anywhere else it is a table and must be on the list. The statement that runs then names every CTE afresh
(cte_1, cte_2, ...; a reference keeps its old name as an alias), so the database cannot resolve a name to a table
this check took for a CTE, whatever its own scoping rules; and that statement is parsed and checked again.

The caller runs the statement on a read-only connection that is stopped at its time limit and caps the size of
any value it builds: this check says what is wrong; the connection enforces the rest.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.scope import Scope, traverse_scope

from sophia_mcp.errors import InvalidInput

FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Merge, exp.Command, exp.Pragma,
    exp.Into, exp.Attach, exp.Detach, exp.Transaction, exp.Commit, exp.Rollback, exp.Copy, exp.Set, exp.Use,
    exp.LoadData, exp.TruncateTable, exp.Grant, exp.Lateral, exp.Unnest,
)  # fmt: skip

# The functions an analyst needs, as each dialect spells them; sqlglot parses each into the node it allows (ifnull
# and nvl are both Coalesce, iif and iff both If). Not here, so refused: reaching outside the database
# (load_extension, readfile), the connection's state (changes, sqlite_version, current_user), and making large
# values from small input (zeroblob, randomblob, printf/format widths, repeat, space, lpad/rpad, randstr).
ANALYST_FUNCTIONS: dict[str, str] = {
    "sqlite": """
        count(x) sum(x) total(x) avg(x) min(x) max(x) group_concat(x) string_agg(x,',')
        row_number() rank() dense_rank() percent_rank() cume_dist() ntile(x) lag(x) lead(x)
        first_value(x) last_value(x) nth_value(x,2)
        coalesce(x,y) ifnull(x,y) nullif(x,y) iif(x,y,z)
        abs(x) round(x,2) ceil(x) floor(x) trunc(x) sqrt(x) power(x,2) ln(x) log(x) exp(x) sign(x) mod(x,2) random()
        lower(x) upper(x) length(x) substr(x,1,2) trim(x) ltrim(x) rtrim(x) replace(x,y,z) instr(x,y) typeof(x)
        date(x) time(x) datetime(x) julianday(x) unixepoch(x) strftime('%Y',x)
        json_extract(x,'$.a') json_array_length(x) json_type(x) json_valid(x)
    """,
    "snowflake": """
        count(x) count_if(x) sum(x) avg(x) min(x) max(x) median(x) stddev(x) variance(x) listagg(x,',')
        approx_count_distinct(x) any_value(x) percentile_cont(x)
        row_number() rank() dense_rank() percent_rank() cume_dist() ntile(x) lag(x) lead(x)
        first_value(x) last_value(x) nth_value(x,2)
        coalesce(x,y) nvl(x,y) ifnull(x,y) nvl2(x,y,z) nullif(x,y) iff(x,y,z) zeroifnull(x) nullifzero(x) div0(x,y)
        decode(x,1,2) greatest(x,y) least(x,y)
        abs(x) round(x,2) ceil(x) floor(x) trunc(x) sqrt(x) power(x,2) ln(x) log(10,x) exp(x) sign(x) mod(x,2)
        lower(x) upper(x) initcap(x) length(x) substr(x,1,2) trim(x) ltrim(x) rtrim(x) replace(x,y,z) left(x,2)
        right(x,2) concat(x,y) split_part(x,',',1) contains(x,y) startswith(x,y) endswith(x,y) charindex(x,y)
        position(x,y)
        current_date() current_timestamp() dateadd(day,1,x) datediff(day,x,y) date_trunc('month',x)
        date_part(year,x) to_date(x) to_timestamp(x) to_char(x) to_number(x) year(x) quarter(x) month(x) week(x)
        day(x) dayofweek(x) hour(x) last_day(x) date_from_parts(x,y,z)
        parse_json(x) try_parse_json(x) get_path(x,'a') get(x,'a') array_size(x)
    """,
}
# Nodes sqlglot counts as functions that are the language's own syntax: AND/OR, CASE (its WHEN is If), CAST,
# EXISTS, COLLATE, REGEXP/RLIKE, and JSON paths (x -> '$.a', x:a.b).
SYNTAX: frozenset[type[exp.Expr]] = frozenset(
    {exp.And, exp.Or, exp.Xor, exp.Case, exp.If, exp.Cast, exp.TryCast, exp.Exists, exp.Collate, exp.RegexpLike,
     exp.JSONExtract, exp.JSONExtractScalar}
)  # fmt: skip


def check_select(sql: str, allowed_tables: Collection[str], dialect: str = "sqlite") -> exp.Query:
    """The statement to run, parsed, if `sql` is a single read-only SELECT over `allowed_tables` calling only the
    analyst's functions; else InvalidInput saying what to change. Its CTEs are renamed (see the module)."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise InvalidInput("The query is empty; write one SELECT statement")
    allowed = frozenset(allowed_tables)
    try:
        tree = _parse(text, dialect)
        for table in tree.find_all(exp.Table):  # names as the database compares them (case, quotes)
            if isinstance(table.this, exp.Identifier):
                Dialect.get_or_raise(dialect).normalize_identifier(table.this)
        for cte in tree.find_all(exp.CTE):
            alias = cte.args.get("alias")
            if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
                Dialect.get_or_raise(dialect).normalize_identifier(alias.this)
        _rename_ctes(tree, _check(tree, allowed, dialect), allowed, dialect)
        # What runs is what sqlglot writes: parse that and check it again.
        again = _parse(tree.sql(dialect), dialect)
        _check(again, allowed, dialect)
    except RecursionError:
        raise InvalidInput("The query nests too deeply to check; flatten it (a CTE, fewer parentheses)") from None
    except SqlglotError as exc:  # a tree sqlglot parsed but cannot scope (a set operation of a bare name, ...)
        raise InvalidInput(f"The query cannot be checked: {str(exc).splitlines()[0][:200]}; simplify it") from None
    return again


def _parse(text: str, dialect: str) -> exp.Query:
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except SqlglotError as exc:  # ParseError, TokenError (an unterminated string), ...
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InvalidInput(f"The query does not parse as SQL: {first}") from None
    if len(statements) != 1:
        raise InvalidInput(f"Send one statement, not {len(statements)}: only a single SELECT runs")
    [tree] = statements
    if not isinstance(tree, exp.Query) or not _only_selects(tree):
        raise InvalidInput(f"Only SELECT runs here, not {tree.key.upper()}: the warehouse is read-only")
    return tree


def _check(tree: exp.Query, allowed: frozenset[str], dialect: str) -> dict[int, exp.CTE]:
    """Refuse what may not run; return the table references that name a CTE (by node id), with that CTE."""
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise InvalidInput(f"{node.key.upper()} is not allowed: only a plain SELECT runs")
        if isinstance(node, exp.In) and node.args.get("field") is not None:
            raise InvalidInput("`x IN table` is not allowed; write `x IN (SELECT column FROM table)`")
        if isinstance(node, exp.From | exp.Join) and not isinstance(node.this, exp.Table | exp.Subquery | exp.Values):
            raise InvalidInput("Table-valued functions are not allowed; select from the tables themselves")
        if isinstance(node, exp.Func) and not _allowed_function(node, dialect):
            raise InvalidInput(
                f"The function {_written(node, dialect)}() is not allowed here; the functions are: "
                f"{', '.join(_function_names(dialect))} (and CASE, CAST, EXISTS)"
            )
    ctes = _cte_references(tree)
    names = _normalized(allowed, dialect)
    cte_names = {cte.alias for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or not table.name:
            raise InvalidInput("Table-valued functions are not allowed; select from the tables themselves")
        if table.db or table.catalog:
            raise InvalidInput(f"Name tables without a schema or database ({table.sql(dialect)})")
        if id(table) not in ctes and table.name not in names:
            hint = ""
            if table.name in cte_names:
                hint = f" (a CTE {table.name} is not visible here: a WITH names its CTEs only inside its own query)"
            raise InvalidInput(
                f"The table {table.name!r} is not open to queries{hint}; these are: {', '.join(sorted(allowed))}"
            )
    return ctes


def _cte_references(tree: exp.Query) -> dict[int, exp.CTE]:
    """The table references sqlglot's scopes resolve to a CTE visible where they stand. A reference no scope
    claims is left out, so it counts as a table and must be on the list."""
    found: dict[int, exp.CTE] = {}
    for scope in traverse_scope(tree):
        for table in scope.tables:
            source = scope.cte_sources.get(table.name)
            if table.db or not isinstance(source, Scope):
                continue
            cte = source.expression.find_ancestor(exp.CTE)
            if cte is not None:
                found[id(table)] = cte
    return found


def _rename_ctes(tree: exp.Query, references: dict[int, exp.CTE], allowed: frozenset[str], dialect: str) -> None:
    """Give every CTE a name no table has (cte_1, ...) and point each reference the scopes resolved at it."""
    taken = set(_normalized(allowed, dialect)) | {t.name for t in tree.find_all(exp.Table)}
    taken |= {c.alias for c in tree.find_all(exp.CTE)}
    fresh: dict[int, str] = {}
    for cte in list(tree.find_all(exp.CTE)):
        number = len(fresh) + 1
        while f"cte_{number}" in taken:
            number += 1
        fresh[id(cte)] = name = f"cte_{number}"
        taken.add(name)
        alias = cte.args.get("alias")
        if not isinstance(alias, exp.TableAlias):
            raise InvalidInput("Every CTE needs a name: WITH name AS (SELECT ...)")
        alias.set("this", exp.to_identifier(name))
    for table in list(tree.find_all(exp.Table)):
        target = references.get(id(table))
        if target is None:
            continue
        if not table.alias:
            table.set("alias", exp.TableAlias(this=table.this.copy()))  # qualified columns keep their meaning
        table.set("this", exp.to_identifier(fresh[id(target)]))


def _allowed_function(node: exp.Func, dialect: str) -> bool:
    if type(node) in SYNTAX:
        return True
    classes, anonymous = _analyst_functions(dialect)
    if isinstance(node, exp.Anonymous):
        return isinstance(node.this, str) and node.this.lower() in anonymous
    return type(node) in classes


@cache
def _analyst_functions(dialect: str) -> tuple[frozenset[type[exp.Expr]], frozenset[str]]:
    """The nodes and the unknown-to-sqlglot names that `ANALYST_FUNCTIONS` parse to in `dialect`."""
    classes: set[type[exp.Expr]] = set()
    anonymous: set[str] = set()
    for call in ANALYST_FUNCTIONS.get(dialect, ANALYST_FUNCTIONS["sqlite"]).split():
        for node in sqlglot.parse_one(f"SELECT {call}", read=dialect).find_all(exp.Func):
            if isinstance(node, exp.Anonymous):
                anonymous.add(node.name.lower())
            elif type(node) not in SYNTAX:
                classes.add(type(node))
    return frozenset(classes), frozenset(anonymous)


@cache
def _function_names(dialect: str) -> tuple[str, ...]:
    calls = ANALYST_FUNCTIONS.get(dialect, ANALYST_FUNCTIONS["sqlite"]).split()
    return tuple(sorted({call.split("(")[0] for call in calls}))


def _written(node: exp.Func, dialect: str) -> str:
    """The function's name as the dialect writes it (sqlglot keeps no spelling: ifnull parses as Coalesce)."""
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    head = node.sql(dialect).split("(")[0].strip()
    return (head if head and " " not in head else node.sql_name()).lower()[:60]


def _normalized(names: frozenset[str], dialect: str) -> frozenset[str]:
    return frozenset(Dialect.get_or_raise(dialect).normalize_identifier(exp.to_identifier(n)).name for n in names)


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
