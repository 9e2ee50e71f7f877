"""Knowledge base speed: ingestion throughput with the local model, and search latency and recall at scale.

- ingestion: documents made from the demo's sentences, through the whole ingest path (parse, chunk, embed,
  index, save), reported as chunks per second;
- a knowledge base of 10k and 100k chunks, written as ingestion writes it: the local vector index's query
  latency p50/p99 beside a bare numpy exact search of the same matrix, recall@10 against that exact search (the
  index searches exactly, so this checks it rather than trades it), and hybrid search (embedding, vectors, full
  text, fusion) through the workflow, p50/p99 and its ratio to the vector query alone.
Run: python bench/knowledge.py [--docs 400] [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sophia_mcp.analysis.documents import Chunk
from sophia_mcp.app.backends import build_services
from sophia_mcp.demo.documents import DOCUMENTS
from sophia_mcp.domain.knowledge import DocumentInfo
from sophia_mcp.domain.times import utcnow
from sophia_mcp.settings import load_settings
from sophia_mcp.workflows.knowledge import ingest_text, search, vector_id

SENTENCES = [
    s.strip() for d in DOCUMENTS for s in re.split(r"(?<=[.!?])\s+", re.sub(r"#+ .*\n", "", d.text)) if len(s) > 30
]

PER_DOCUMENT = 10
TYPES = ["playbook", "product_note", "competitor_note", "policy", "meeting_note"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def synthetic_document(rng: random.Random, number: int) -> str:
    sections = []
    for s in range(rng.randint(3, 6)):
        body = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(6, 14)))
        sections.append(f"## Section {s + 1}\n\n{body}")
    return f"# Document {number}\n\n" + "\n\n".join(sections)


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
    latencies = []
    for question in ["who approves a discount", "how long does onboarding take", "card fees for residents"] * 20:
        started = time.perf_counter()
        await search(services, question, limit=10)
        latencies.append(time.perf_counter() - started)
    print(f"hybrid search over {chunks} chunks: p50 {pct(latencies, 50) * 1000:.1f} ms, "
          f"p99 {pct(latencies, 99) * 1000:.1f} ms")  # fmt: skip
    services.close()


class OutOfBudget(logging.Filter):
    """Counts the searches whose full-text ranking ran out of time (and keeps their log lines quiet)."""

    count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.count += "ran out of" in record.getMessage()
        return False


def row_of(vid: str) -> int:
    """The row a vector id was made from: `doc-N#hash.seq` is row N * PER_DOCUMENT + seq."""
    return int(vid.split("#")[0].removeprefix("doc-")) * PER_DOCUMENT + int(vid.rsplit(".", 1)[1])


async def knowledge_base_at(size: int, queries: int) -> None:
    """A knowledge base of `size` chunks (documents of 10), written as ingestion writes it, then searched."""
    services = build_services(load_settings(data_dir=Path(tempfile.mkdtemp(prefix="sophia-vec-"))))
    embedder, index, documents = services.embedder, services.vectors, services.documents
    rng = random.Random(size)
    texts = [" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(4, 9))) for _ in range(size)]
    started = time.perf_counter()
    vectors = await embedder.embed(texts)
    embedded = time.perf_counter() - started
    await index.bind(embedder.model, embedder.dimension)
    now = utcnow()
    for first in range(0, size, PER_DOCUMENT):
        number = first // PER_DOCUMENT
        document = DocumentInfo(
            id=f"doc-{number}", title=f"Document {number}", source="bench", type=TYPES[number % len(TYPES)],
            format="text", tags=[], date=None, content_hash=f"{number:016x}", chars=0, chunk_count=PER_DOCUMENT,
            embedding_model=embedder.model, created_at=now, updated_at=now,
        )  # fmt: skip
        chunks = [
            Chunk(seq=seq, section=document.title, text=texts[first + seq], start_char=0, end_char=0)
            for seq in range(PER_DOCUMENT)
        ]
        await documents.save(document, chunks)
    for first in range(0, size, 5000):
        rows = range(first, min(size, first + 5000))
        await index.upsert(
            [vector_id(f"doc-{i // PER_DOCUMENT}", f"{i // PER_DOCUMENT:016x}", i % PER_DOCUMENT) for i in rows],
            vectors[first : first + len(rows)],
            [{"document_id": f"doc-{i // PER_DOCUMENT}", "type": TYPES[i // PER_DOCUMENT % len(TYPES)]} for i in rows],
        )
    matrix = vectors.astype(np.float32)
    question_texts = [rng.choice(SENTENCES) for _ in range(queries)]
    questions = await embedder.embed(question_texts)
    await index.query(questions[0], 10)  # the first query loads the matrix
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
    filtered = []
    for q in questions[:50]:
        started = time.perf_counter()
        await index.query(q, 10, {"type": {"$in": ["playbook"]}})
        filtered.append(time.perf_counter() - started)
    hybrid, cut, logger = [], OutOfBudget(), logging.getLogger("sophia_mcp.store.documents")
    logger.addFilter(cut)
    for text in question_texts[:100]:
        started = time.perf_counter()
        await search(services, text, limit=10)
        hybrid.append(time.perf_counter() - started)
    logger.removeFilter(cut)
    p50 = pct(latencies, 50)
    print(f"{size:,} chunks (embedded in {embedded:.1f} s, {size / embedded:,.0f} chunks/s by the model alone):")
    print(f"  local index query  p50 {p50 * 1000:6.2f} ms  p99 {pct(latencies, 99) * 1000:6.2f} ms   "
          f"ratio to a bare numpy exact search p50 {p50 / pct(exact, 50):.2f}")  # fmt: skip
    print(f"  with a type filter p50 {pct(filtered, 50) * 1000:6.2f} ms  p99 {pct(filtered, 99) * 1000:6.2f} ms")
    print(f"  recall@10 against exact search {sum(recalls) / len(recalls):.3f}")
    print(f"  hybrid search      p50 {pct(hybrid, 50) * 1000:6.2f} ms  p99 {pct(hybrid, 99) * 1000:6.2f} ms   "
          f"ratio to the index query p50 {pct(hybrid, 50) / p50:.2f} (embedding, vectors, text, fusion)")  # fmt: skip
    print(f"  full-text ranking ran out of its {services.settings.knowledge.lexical_budget_ms:.0f} ms budget in "
          f"{cut.count} of {len(hybrid)} searches (the vectors ranked alone there)")  # fmt: skip
    services.close()


async def main(docs: int, sizes: list[int], queries: int) -> None:
    await ingestion(docs)
    for size in sizes:
        await knowledge_base_at(size, queries)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    options = parser.parse_args()
    anyio.run(main, options.docs, options.sizes, options.queries)
