"""Knowledge base speed: ingestion throughput with the local model, and search at 1k, 10k and 100k chunks of prose.

- ingestion: documents made from the demo's sentences, through the whole ingest path (parse, chunk, embed,
  index, save), reported as chunks per second;
- a knowledge base of each size, cut from real prose: the documentation installed packages ship under this
  interpreter's site-packages (*.md, *.rst, *.txt, their METADATA and the docstrings of their modules, with the
  standard library's) mixed with the demo documents, 36 words a chunk (what makes 100k chunks of it), no passage
  twice; written as ingestion writes it (documents of 10 chunks, embedded with the bundled model) and searched
  only through the public paths (Services, workflows):
  - the local vector index's query p50/p99 beside a bare numpy exact search of the same matrix, and recall@10
    against that exact search;
  - hybrid search (embedding, vectors, full text, fusion) for sentence queries (8-16 words cut from a chunk) and
    keyword queries (two words of a chunk): p50/p99, the ratio to the vector query alone, how often full-text
    ranking ran out of its budget (the vectors then rank alone), and how often the chunk the query came from is
    among the first ten hits; and the full-text half alone (`Documents.lexical`, interleaved) beside its budget;
  - the first search after another connection commits to an unrelated table, and after ingesting one document,
    each beside the steady search interleaved with it (A, B, A, B ...);
  - a search filtered to one document type beside the unfiltered one, interleaved;
  - the memory a process searching the base holds beyond one searching an empty base, beside the raw matrix.
The built stores are kept under the temp dir, keyed by the corpus and the store's code, so a second run reuses
them (the first 100k build took 77-145 s here; its embedding rate is printed).
The same figures on PostgreSQL (`--postgres` sizes, 10k by default) come right after SQLite's at that size: a
server of its own on 127.0.0.1 (Debian's binaries, as the tests start it), the same chunks and vectors (taken from
the SQLite build), written through the same repositories; skipped, saying so, without the server binaries.
Run: python bench/knowledge.py [--docs 400] [--sizes 1000 10000 100000] [--postgres 10000] [--queries 100]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sophia_mcp.store
from sophia_mcp.analysis.documents import Chunk
from sophia_mcp.app.backends import build_services
from sophia_mcp.app.services import Services
from sophia_mcp.demo.documents import DOCUMENTS
from sophia_mcp.domain.knowledge import DocumentFilter, DocumentInfo
from sophia_mcp.domain.times import utcnow
from sophia_mcp.settings import Settings, load_settings
from sophia_mcp.workflows.knowledge import CANDIDATES, ingest_text, search, vector_id
from sophia_mcp.workflows.runs import start_run
from tests.support.postgres import PostgresServer, bin_dir, running_postgres

SENTENCES = [
    s.strip() for d in DOCUMENTS for s in re.split(r"(?<=[.!?])\s+", re.sub(r"#+ .*\n", "", d.text)) if len(s) > 30
]

PER_DOCUMENT = 10
WORDS_PER_CHUNK = 36
TYPES = ["playbook", "product_note", "competitor_note", "policy", "meeting_note"]
CACHE = Path(tempfile.gettempdir()) / "sophia-bench-knowledge"
SITE_PACKAGES = Path(np.__file__).resolve().parent.parent
STDLIB = Path(sysconfig.get_paths()["stdlib"])
DOCSTRING = re.compile(r'"""(.*?)"""|\'\'\'(.*?)\'\'\'', re.S)
SKIPPED = {"RECORD", "top_level.txt", "entry_points.txt", "SOURCES.txt", "dependency_links.txt", "requires.txt"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:6.2f} ms"


def synthetic_document(rng: random.Random, number: int) -> str:
    sections = []
    for s in range(rng.randint(3, 6)):
        body = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(6, 14)))
        sections.append(f"## Section {s + 1}\n\n{body}")
    return f"# Document {number}\n\n" + "\n\n".join(sections)


@functools.cache
def prose() -> list[str]:
    """The texts the corpus is cut from: the demo documents, then the documentation and docstrings (every long
    triple-quoted string) of the installed packages and the standard library, in a fixed order."""
    texts = [d.text for d in DOCUMENTS]
    for path in sorted([*SITE_PACKAGES.rglob("*"), *STDLIB.glob("*.py"), *STDLIB.glob("*/*.py")]):
        name = path.name
        try:
            if (name.endswith((".md", ".rst", ".txt")) or name == "METADATA") and name not in SKIPPED:
                if "LICEN" not in name.upper() and path.is_file():
                    texts.append(path.read_text(errors="ignore"))
            elif name.endswith(".py") and path.is_file():
                found = (m[1] or m[2] or "" for m in DOCSTRING.finditer(path.read_text(errors="ignore")))
                texts += [doc for doc in found if len(doc) > 120]
        except OSError:
            continue
    return texts


def corpus(size: int) -> list[str]:
    """`size` distinct chunks of WORDS_PER_CHUNK words (the texts run together, as one long text), shuffled."""
    seen: set[str] = set()
    out: list[str] = []
    words: list[str] = []
    for text in dict.fromkeys(prose()):  # a text shipped twice (vendored copies) counts once
        words += text.split()
        while len(words) >= WORDS_PER_CHUNK:
            chunk = " ".join(words[:WORDS_PER_CHUNK])
            words = words[WORDS_PER_CHUNK:]
            if chunk not in seen:
                seen.add(chunk)
                out.append(chunk)
    if len(out) < size:
        raise SystemExit(f"only {len(out):,} distinct chunks of prose here; ask for at most that many")
    random.Random(1).shuffle(out)
    return out[:size]


def store_code_key() -> str:
    """What a built store depends on besides its texts: the schema and the vector index's code."""
    digest = hashlib.sha256()
    for name in ("migrations.py", "vectors.py"):
        digest.update((Path(sophia_mcp.store.__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def document_of(number: int, model: str) -> DocumentInfo:
    now = utcnow()
    return DocumentInfo(
        id=f"doc-{number}", title=f"Document {number}", source="bench", type=TYPES[number % len(TYPES)],
        format="text", tags=[], date=None, content_hash=f"{number:016x}", chars=0, chunk_count=PER_DOCUMENT,
        embedding_model=model, created_at=now, updated_at=now,
    )  # fmt: skip


def settings_for(data_dir: Path, url: str | None = None) -> Settings:
    """The settings of a process on the base at `data_dir`, its store on the PostgreSQL database at `url` if any."""
    return load_settings(data_dir=data_dir, **({"store": {"url": url}} if url else {}))


async def build(services: Services, texts: list[str], vectors: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Write the chunks as ingestion writes them; their vectors (embedded here unless given), and the seconds the
    model took to embed them."""
    embedder, index, documents = services.embedder, services.vectors, services.documents
    started = time.perf_counter()
    if vectors is None:
        vectors = await embedder.embed(texts)
    embedded = time.perf_counter() - started
    await index.bind(embedder.model, embedder.dimension)
    for first in range(0, len(texts), PER_DOCUMENT):
        document = document_of(first // PER_DOCUMENT, embedder.model)
        chunks = [
            Chunk(seq=seq, section=document.title, text=texts[first + seq], start_char=0, end_char=0)
            for seq in range(PER_DOCUMENT)
        ]
        await documents.save(document, chunks)
    for first in range(0, len(texts), 5000):
        rows = range(first, min(len(texts), first + 5000))
        await index.upsert(
            [vector_id(f"doc-{i // PER_DOCUMENT}", f"{i // PER_DOCUMENT:016x}", i % PER_DOCUMENT) for i in rows],
            vectors[first : first + len(rows)],
            [{"document_id": f"doc-{i // PER_DOCUMENT}", "type": TYPES[i // PER_DOCUMENT % len(TYPES)]} for i in rows],
        )
    return vectors, embedded


async def prepared(size: int) -> tuple[Path, list[str], np.ndarray, str]:
    """A fresh data dir holding a knowledge base of `size` chunks (copied from the cache when built before), its
    texts and their vectors, and how it was built."""
    texts = corpus(size)
    key = hashlib.sha256("\n".join(texts).encode() + store_code_key().encode()).hexdigest()[:16]
    cached = CACHE / f"{size}-{key}"
    data_dir = Path(tempfile.mkdtemp(prefix="sophia-kb-"))
    if cached.exists():
        shutil.copytree(cached / "store", data_dir, dirs_exist_ok=True)
        return data_dir, texts, np.load(cached / "matrix.npy"), f"reused from {cached}"
    services = build_services(load_settings(data_dir=data_dir))
    started = time.perf_counter()
    matrix, embedded = await build(services, texts)
    built = time.perf_counter() - started
    services.close()
    partial = cached.with_suffix(".partial")
    shutil.copytree(data_dir, partial / "store", dirs_exist_ok=True)
    np.save(partial / "matrix.npy", matrix)
    partial.rename(cached)
    how = f"built in {built:.0f} s, the bundled model embedding {size / embedded:,.0f} chunks/s"
    return data_dir, texts, matrix, how


async def prepared_on_postgres(size: int, url: str) -> tuple[Path, list[str], np.ndarray, str]:
    """The same knowledge base as `prepared` (the same texts and vectors), written to the database at `url`."""
    sqlite_dir, texts, matrix, _ = await prepared(size)
    shutil.rmtree(sqlite_dir, ignore_errors=True)
    data_dir = Path(tempfile.mkdtemp(prefix="sophia-kb-pg-"))
    services = build_services(settings_for(data_dir, url))
    started = time.perf_counter()
    await build(services, texts, matrix)
    services.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")  # what autovacuum does within a minute of a bulk load: the statistics search reads
    return data_dir, texts, matrix, f"written in {time.perf_counter() - started:.0f} s, vectors from the SQLite build"


async def ingestion(docs: int) -> None:
    services = build_services(load_settings(data_dir=Path(tempfile.mkdtemp(prefix="sophia-kb-"))))
    rng = random.Random(3)
    texts = [synthetic_document(rng, i) for i in range(docs)]
    await ingest_text(services, "warm-up", texts[0])  # loads the model once, outside the timing
    started = time.perf_counter()
    chunks = 0
    for i, text in enumerate(texts):
        report = await ingest_text(services, f"Document {i}", text, type="note")
        chunks += report.document.chunk_count
    elapsed = time.perf_counter() - started
    print(f"ingestion: {docs} documents, {chunks} chunks in {elapsed:.2f} s -> {chunks / elapsed:,.0f} chunks/s "
          f"({docs / elapsed:.1f} documents/s), local model, one process")  # fmt: skip
    services.close()


class OutOfBudget(logging.Filter):
    """Counts the searches whose full-text ranking ran out of time (and keeps their log lines quiet)."""

    count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += "ran out of" in record.getMessage()
        return False


CUT = OutOfBudget()


def row_of(vid: str) -> int:
    """The row a vector id was made from: `doc-N#hash.seq` is row N * PER_DOCUMENT + seq."""
    return int(vid.split("#")[0].removeprefix("doc-")) * PER_DOCUMENT + int(vid.rsplit(".", 1)[1])


def sentence_query(rng: random.Random, text: str) -> str:
    words = text.split()
    start = rng.randrange(max(1, len(words) - 16))
    return " ".join(words[start : start + rng.randint(8, 16)])


def keyword_query(rng: random.Random, text: str) -> str:
    words = list(dict.fromkeys(re.findall(r"[A-Za-z]{4,}", text))) or text.split()
    return " ".join(rng.sample(words, min(2, len(words))))


async def hybrid(services: Services, queries: list[tuple[str, int]]) -> tuple[list[float], list[float], int, float]:
    """Hybrid search latencies, those of its full-text half alone (interleaved), how many searches ran out of the
    full-text budget, and the share finding the chunk their query came from."""
    latencies, lexical, cut, found = [], [], 0, 0
    budget = services.settings.knowledge.lexical_budget_ms / 1000
    for text, row in queries:
        before = CUT.count
        started = time.perf_counter()
        hits = await search(services, text, limit=10)
        latencies.append(time.perf_counter() - started)
        cut += CUT.count - before
        found += any(h.chunk_id == f"doc-{row // PER_DOCUMENT}#{row % PER_DOCUMENT}" for h in hits)
        started = time.perf_counter()
        await services.documents.lexical(text, None, CANDIDATES, budget)
        lexical.append(time.perf_counter() - started)
    return latencies, lexical, cut, found / len(queries)


async def first_after(
    services: Services, texts: list[str], event: str, rounds: int, rng: random.Random
) -> tuple[float, float]:
    """Median of the first search after `event` (another connection committing to an unrelated table, or this
    server ingesting one document), and of a steady search interleaved with it."""
    other = build_services(services.settings)
    firsts, steady = [], []
    try:
        for i in range(rounds):
            text = sentence_query(rng, rng.choice(texts))
            started = time.perf_counter()
            await search(services, text, limit=10)
            steady.append(time.perf_counter() - started)
            if event == "commit":
                async with start_run(other.runs, "bench_unrelated", f"n{i}", {}):
                    pass
            else:
                body = " ".join(rng.choice(texts) for _ in range(4))
                await ingest_text(services, f"Bench note {rng.random()}", body, type="note")
            text = sentence_query(rng, rng.choice(texts))
            started = time.perf_counter()
            await search(services, text, limit=10)
            firsts.append(time.perf_counter() - started)
    finally:
        other.close()
    return statistics.median(firsts), statistics.median(steady)


async def filtered_vs_not(services: Services, queries: list[str]) -> tuple[list[float], list[float]]:
    only = DocumentFilter(types=["playbook"])
    filtered, unfiltered = [], []
    for text in queries:
        started = time.perf_counter()
        await search(services, text, only, limit=10)
        filtered.append(time.perf_counter() - started)
        started = time.perf_counter()
        await search(services, text, limit=10)
        unfiltered.append(time.perf_counter() - started)
    return filtered, unfiltered


def resident_after_search(data_dir: Path, url: str | None) -> int:
    """Bytes resident in a fresh process that searched the base at `data_dir` (or in the database at `url`) once."""
    env = os.environ | ({"SOPHIA_STORE__URL": url} if url else {})
    answer = subprocess.run(
        [sys.executable, __file__, "--resident", str(data_dir)], capture_output=True, text=True, check=True, env=env
    )
    return int(answer.stdout.split()[-1])


async def resident(data_dir: Path) -> None:
    services = build_services(load_settings(data_dir=data_dir))  # on SOPHIA_STORE__URL's database when set
    await search(services, "who approves a discount", DocumentFilter(types=["playbook"]), limit=10)
    await search(services, "who approves a discount", limit=10)
    print(resident_bytes())


def resident_bytes() -> int:
    """This process's resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no /proc/self/status here: the memory figure needs Linux")


async def knowledge_base_at(size: int, queries: int, postgres: PostgresServer | None = None) -> None:
    """Every figure at `size` chunks, on SQLite, or on PostgreSQL when given its server."""
    url = postgres.url(postgres.create_database()) if postgres else None
    data_dir, texts, matrix, how = await (prepared_on_postgres(size, url) if url else prepared(size))
    services = build_services(settings_for(data_dir, url))
    embedder, index = services.embedder, services.vectors
    words = len({w for t in texts for w in re.findall(r"\w+", t.lower())})
    engine = "PostgreSQL" if url else "SQLite"
    print(f"{size:,} chunks of prose on {engine} ({words:,} distinct words; {how}; load {os.getloadavg()[0]:.1f}):")
    rng = random.Random(size)
    rows = [rng.randrange(size) for _ in range(queries)]
    sentences = [(sentence_query(rng, texts[r]), r) for r in rows]
    keywords = [(keyword_query(rng, texts[r]), r) for r in rows]
    questions = await embedder.embed([t for t, _ in sentences])
    await index.query(questions[0], 10)  # the first query loads the matrix
    await search(services, sentences[0][0])  # and the first search sweeps
    latencies, exact, recalls = [], [], []
    for q in questions:
        started = time.perf_counter()
        found = await index.query(q, 10)
        latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        exact_scores = matrix @ q
        top = np.argpartition(-exact_scores, 9)[:10]
        exact.append(time.perf_counter() - started)
        tenth = exact_scores[top].min()
        # A hit counts when exact search ranks it in the top 10; ties at the 10th score (identical texts) all do.
        recalls.append(sum(exact_scores[row_of(m.id)] >= tenth - 1e-6 for m in found) / 10)
    p50 = pct(latencies, 50)
    print(f"  vector index query p50 {ms(p50)}  p99 {ms(pct(latencies, 99))}   "
          f"ratio to a bare numpy exact search p50 {p50 / pct(exact, 50):.2f}; "
          f"recall@10 against it {sum(recalls) / len(recalls):.3f}")  # fmt: skip
    budget = services.settings.knowledge.lexical_budget_ms
    for kind, asked in (("sentence", sentences), ("keyword", keywords)):
        took, lexical, cut, found_share = await hybrid(services, asked)
        print(f"  hybrid, {kind:8} p50 {ms(pct(took, 50))}  p99 {ms(pct(took, 99))}   ratio to the vector query "
              f"p50 {pct(took, 50) / p50:.2f}; full text ran out of its {budget:.0f} ms in {cut} of {len(took)} "
              f"({cut / len(took):.0%}); the query's own chunk in the top 10: {found_share:.0%}")  # fmt: skip
        print(f"    its full-text half alone p50 {ms(pct(lexical, 50))}  p99 {ms(pct(lexical, 99))}   ratio to the "
              f"budget p99 {pct(lexical, 99) / (budget / 1000):.2f}")  # fmt: skip
    rounds = 5
    for event, words_of in (("commit", "after another connection commits elsewhere"), ("ingest", "after ingesting")):
        first, steady = await first_after(services, texts, event, rounds, rng)
        print(f"  first search {words_of + ':':44} median {ms(first)} beside steady {ms(steady)}: "
              f"{first / steady:.2f}x (target <= 2x, {rounds} rounds)")  # fmt: skip
    filtered, unfiltered = await filtered_vs_not(services, [t for t, _ in sentences[:50]])
    f50, f99, u50, u99 = pct(filtered, 50), pct(filtered, 99), pct(unfiltered, 50), pct(unfiltered, 99)
    print(f"  filtered to one type p50 {ms(f50)} p99 {ms(f99)} beside unfiltered p50 {ms(u50)} p99 {ms(u99)}: "
          f"p50 {f50 / u50:.2f}x, p99 {f99 / u99:.2f}x (target <= 1.5x)")  # fmt: skip
    services.close()
    empty = Path(tempfile.mkdtemp(prefix="sophia-kb-empty-"))
    empty_url = postgres.url(postgres.create_database()) if postgres else None
    held = resident_after_search(data_dir, url) - resident_after_search(empty, empty_url)
    raw = size * embedder.dimension * 4
    print(f"  memory of a process searching it, beyond one searching an empty base: {held / 2**20:,.0f} MiB beside "
          f"the raw matrix {raw / 2**20:,.0f} MiB: {held / raw:.2f}x (target <= 2x)")  # fmt: skip
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(empty, ignore_errors=True)


async def main(docs: int, sizes: list[int], on_postgres: list[int], queries: int) -> None:
    logging.getLogger("sophia_mcp.store.documents").addFilter(CUT)
    # Absolute figures follow the machine's load (the ratios beside anchors far less): say what it was.
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
    if docs:
        await ingestion(docs)
    for size in sorted({*sizes, *on_postgres}):
        if size in sizes:
            await knowledge_base_at(size, queries)
        if size not in on_postgres:
            continue
        if bin_dir() is None:
            print(f"{size:,} chunks on PostgreSQL: skipped, its server binaries (initdb, pg_ctl) are not installed")
            continue
        with running_postgres() as server:
            await knowledge_base_at(size, queries, server)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=400, help="documents for the ingestion figure (0: skip it)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    parser.add_argument("--postgres", type=int, nargs="*", default=[10_000], help="sizes also run on PostgreSQL")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--resident", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.resident:
        anyio.run(resident, options.resident)
    else:
        anyio.run(main, options.docs, options.sizes, options.postgres, options.queries)
