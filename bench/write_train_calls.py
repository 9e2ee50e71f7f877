"""Writes the "train" calls of tests/data/eval_calls from their compact text (tests/data/eval_calls/train_calls.txt).

The text holds clients and calls. A client is a line `@client <id> | <name> | <domain>`; a call is a block:

    === <title>
    client: <id> | sentiment: <label> | competitors: <names or -> [| at_risk: yes|no]
    I <name> | <title>          (one line per party: I Internal, E External)
    <first name>: <what they said, one or more sentences> [risk tag after the sentence that raises it]

Tags name the risk a client sentence raises: [pricing] [churn] [budget] [impl] [comp]. The call's risk kinds are
its tags; at risk, unless said, is churn intent or two kinds or more. Each call becomes a Gong export in the shapes
of the other eval calls (`/v2/calls/extensive` then `/v2/calls/transcript`), its labels are appended to labels.json
with the split "train" (replacing the train calls written before), its clients to clients.json, and the sentences
a tag marks to train_sentences.json (what bench/fit_analyst.py fits the risk scorer's train part on).
Run: python bench/write_train_calls.py
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EVAL = Path(__file__).parent.parent / "tests" / "data" / "eval_calls"
TAGS = {"pricing": "pricing", "churn": "churn_intent", "budget": "budget", "impl": "implementation",
        "comp": "competitor_evaluation"}  # fmt: skip
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
TAG = re.compile(r"\s*\[(\w+)\]")
FIRST_ID = 3200000000000000001
FIRST_DAY = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


def parse(text: str) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    clients: list[dict[str, str]] = []
    calls: list[dict[str, Any]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@client "):
            cid, name, domain = (p.strip() for p in line[len("@client ") :].split("|"))
            clients.append({"id": cid, "name": name, "domain": domain})
        elif line.startswith("=== "):
            calls.append({"title": line[4:].strip(), "parties": [], "lines": []})
        elif line.startswith("client:"):
            fields = dict(p.strip().split(":", 1) for p in line.split("|"))
            calls[-1]["meta"] = {k.strip(): v.strip() for k, v in fields.items()}
        elif re.match(r"^[IE] [^:]+\|", line):
            side, rest = line[0], line[2:]
            name, title = (p.strip() for p in rest.split("|"))
            calls[-1]["parties"].append({"name": name, "title": title, "internal": side == "I"})
        else:
            who, said = line.split(":", 1)
            calls[-1]["lines"].append((who.strip(), said.strip()))
    return clients, calls


def sentences(said: str) -> list[tuple[str, list[str]]]:
    """The line's sentences, each with the risk kinds its tags name."""
    out = []
    for piece in SENTENCE.split(said):
        kinds = [TAGS[t] for t in TAG.findall(piece)]
        text = TAG.sub("", piece).strip()
        if text:
            out.append((text, kinds))
        elif kinds and out:
            out[-1][1].extend(kinds)
    return out


def email(name: str, domain: str) -> str:
    first, *rest = name.lower().replace("'", "").split()
    return f"{first}.{rest[-1]}@{domain}" if rest else f"{first}@{domain}"


def export(n: int, call: dict[str, Any], clients: dict[str, dict[str, str]]) -> tuple[Any, list[dict[str, Any]]]:
    call_id = str(FIRST_ID + n)
    client = clients[call["meta"]["client"]]
    started = FIRST_DAY + timedelta(days=n // 2, hours=2 * (n % 2))
    parties, speakers = [], {}
    for i, p in enumerate(call["parties"]):
        speaker = str(8100000000 + n * 10 + i)
        speakers[p["name"].split()[0]] = (speaker, p["internal"])
        party = {
            "id": str(40000 + n * 10 + i),
            "emailAddress": email(p["name"], "payready.com" if p["internal"] else client["domain"]),
            "name": p["name"], "title": p["title"], "affiliation": "Internal" if p["internal"] else "External",
            "methods": ["Invitee"], "speakerId": speaker,
        }  # fmt: skip
        if p["internal"]:
            party["userId"] = str(88003000000 + i)
        parties.append(party)
    monologues, tagged, at = [], [], 1500
    for who, said in call["lines"]:
        speaker, internal = speakers[who]
        rows = []
        for text, kinds in sentences(said):
            end = at + 60 * len(text)
            rows.append({"start": at, "end": end, "text": text})
            if not internal:
                tagged.append({"text": text, "kinds": kinds})
            elif kinds:
                raise ValueError(f"a risk tag on an internal line: {text}")
            at = end + 250
        monologues.append({"speakerId": speaker, "topic": None, "sentences": rows})
        at += 600
    meta = {
        "id": call_id, "url": f"https://app.gong.io/call?id={call_id}", "title": call["title"],
        "scheduled": (started - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "duration": at // 1000 + 1,
        "primaryUserId": parties[0].get("userId", "88003000000"), "direction": "Conference", "system": "Zoom",
        "scope": "External", "media": "Video", "language": "eng", "workspaceId": "623457276584334",
        "isPrivate": False,
    }  # fmt: skip
    account = {"objectType": "Account", "fields": [{"name": "Name", "value": client["name"]}], "objectId": client["id"]}
    context = [{"system": "Salesforce", "objects": [account]}]
    page = {"totalRecords": 1, "currentPageSize": 1, "currentPageNumber": 0}
    pages = [
        {"requestId": f"train{n:03d}x", "records": page, "calls": [{"metaData": meta, "parties": parties,
                                                                   "context": context}]},
        {"requestId": f"train{n:03d}t", "records": page,
         "callTranscripts": [{"callId": call_id, "transcript": monologues}]},
    ]  # fmt: skip
    return pages, tagged


def label_of(n: int, call: dict[str, Any], tagged: list[dict[str, Any]]) -> dict[str, Any]:
    meta = call["meta"]
    risks = sorted({k for row in tagged for k in row["kinds"]})
    at_risk = meta.get("at_risk")
    competitors = [] if meta["competitors"] == "-" else [c.strip() for c in meta["competitors"].split(",")]
    return {
        "call_id": str(FIRST_ID + n), "file": f"train_{n + 1:03d}.json", "title": call["title"], "split": "train",
        "sentiment": meta["sentiment"], "risks": risks, "competitors": competitors, "client": {"id": meta["client"]},
        "at_risk": at_risk == "yes" if at_risk else ("churn_intent" in risks or len(risks) >= 2),
    }  # fmt: skip


def main() -> None:
    new_clients, calls = parse((EVAL / "train_calls.txt").read_text())
    known = json.loads((EVAL / "clients.json").read_text())
    ours = {c["id"] for c in new_clients}
    clients = [c for c in known if c["id"] not in ours] + new_clients
    by_id = {c["id"]: c for c in clients}
    for old in (EVAL / "gong").glob("train_*.json"):
        old.unlink()
    labels_doc = json.loads((EVAL / "labels.json").read_text())
    labels = [c for c in labels_doc["calls"] if c["split"] != "train"]
    sentences_out = []
    for n, call in enumerate(calls):
        pages, tagged = export(n, call, by_id)
        label = label_of(n, call, tagged)
        (EVAL / "gong" / label["file"]).write_text(json.dumps(pages, indent=1) + "\n")
        labels.append(label)
        sentences_out.append({"call_id": label["call_id"], "sentences": tagged})
    labels_doc["calls"] = labels
    (EVAL / "labels.json").write_text(json.dumps(labels_doc, indent=1) + "\n")
    (EVAL / "clients.json").write_text(json.dumps(clients, indent=1) + "\n")
    (EVAL / "train_sentences.json").write_text(json.dumps(sentences_out, indent=1) + "\n")
    print(f"{len(calls)} train calls, {len(new_clients)} clients written to {EVAL}")


if __name__ == "__main__":
    main()
