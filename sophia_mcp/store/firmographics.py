"""The embedded enricher: the store's firmographics table (seeded by the demo, importable from CSV).

It knows firms, not people: a person "matches" when the firm behind their email domain is known, and then
carries only that firm. Everything else about them stays unknown (the lead score reads seniority off the title).
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from sophia_mcp.domain.enrich import Organization, Person, PersonQuery
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import InvalidInput
from sophia_mcp.store.database import Store

FIRMOGRAPHIC_COLUMNS = tuple(f for f in Organization.model_fields if f != "technologies")


def domain_of(query: PersonQuery) -> str | None:
    if query.domain:
        return query.domain.strip().lower()
    if query.email and "@" in query.email:
        return query.email.rsplit("@", 1)[1].strip().lower()
    return None


def save_firmographics(conn: sqlite3.Connection, organizations: Iterable[Organization], source: str) -> int:
    rows = [
        (*(getattr(o, c) for c in FIRMOGRAPHIC_COLUMNS), json.dumps(o.technologies), source, iso(utcnow()))
        for o in organizations
        if o.domain
    ]
    columns = ", ".join((*FIRMOGRAPHIC_COLUMNS, "technologies", "source", "updated_at"))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*FIRMOGRAPHIC_COLUMNS[1:], "technologies", "source"))
    conn.executemany(
        f"INSERT INTO firmographics ({columns}) VALUES ({', '.join('?' for _ in range(len(FIRMOGRAPHIC_COLUMNS) + 3))})"
        f" ON CONFLICT (domain) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
        rows,
    )
    return len(rows)


def read_firmographics_csv(path: Path) -> tuple[list[Organization], list[str]]:
    """Organizations from a CSV with a `domain` column (others as in `Organization`; technologies split on ';').

    Returns the good rows and, for each bad one, its line number and what is wrong with it."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"Cannot read {path}: {exc.strerror}") from None
    good: list[Organization] = []
    problems: list[str] = []
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "domain" not in reader.fieldnames:
            raise InvalidInput(f"{path} has no 'domain' column; its header must name the columns, domain first")
        unknown = set(reader.fieldnames) - set(Organization.model_fields)
        if unknown:
            raise InvalidInput(f"{path} has columns this import does not know: {', '.join(sorted(unknown))}")
        for line, row in enumerate(reader, start=2):
            values = {k: (v.strip() or None) for k, v in row.items() if k and v is not None}
            technologies = values.pop("technologies", None)
            try:
                org = Organization.model_validate(
                    {**values, "technologies": [t.strip() for t in (technologies or "").split(";") if t.strip()]}
                )
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                problems.append(f"line {line}: {'.'.join(map(str, first['loc']))}: {first['msg']}")
                continue
            if not org.domain:
                problems.append(f"line {line}: domain is empty")
                continue
            good.append(org.model_copy(update={"domain": org.domain.lower()}))
    return good, problems


class LocalEnricher:
    name = "local"
    bulk_size = 100

    def __init__(self, store: Store) -> None:
        self.store = store

    def _organizations(self, domains: list[str]) -> dict[str, Organization]:
        wanted = sorted({d.lower() for d in domains if d})
        found: dict[str, Organization] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.store.query(
                f"SELECT * FROM firmographics WHERE domain IN ({', '.join('?' for _ in chunk)})", chunk
            )
            for row in rows:
                org = Organization.model_validate(
                    {**{c: row[c] for c in FIRMOGRAPHIC_COLUMNS}, "technologies": json.loads(row["technologies"])}
                )
                found[row["domain"].lower()] = org
        return found

    async def organizations(self, domains: list[str]) -> dict[str, Organization]:
        return await self.store.run(self._organizations, domains)

    async def save(self, organizations: Iterable[Organization], source: str) -> int:
        """Insert or update firms by domain in one transaction; returns how many were saved (those with a domain)."""
        return await self.store.run(self._save, list(organizations), source)

    def _save(self, organizations: list[Organization], source: str) -> int:
        with self.store.transaction() as conn:
            return save_firmographics(conn, organizations, source)

    async def match_people(self, queries: list[PersonQuery]) -> list[Person | None]:
        known = await self.organizations([d for q in queries if (d := domain_of(q))])
        answers: list[Person | None] = []
        for query in queries:
            org = known.get(domain_of(query) or "")
            if org is None:
                answers.append(None)
                continue
            answers.append(Person(email=query.email, organization=org, source="local"))
        return answers
