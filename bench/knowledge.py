"""Knowledge base speed: ingestion throughput with the local model, and search latency and recall at scale.

- ingestion: documents made from the demo's sentences, through the whole ingest path (parse, chunk, embed,
  index, save), reported as chunks per second;
- the local vector index at 10k and 100k chunks: query latency p50/p99 and recall@10 against exact search
  done separately with numpy (the index searches exactly, so this checks it rather than trades it);
- hybrid search (vectors + full text, fused) through the workflow, p50/p99, over what was ingested.
Run: python bench/knowledge.py [--docs 400] [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sophia_mcp.adapters.local_embed import LocalEmbedder
from sophia_mcp.adapters.local_vectors import LocalVectorIndex
from sophia_mcp.demo_documents import DOCUMENTS
from sophia_mcp.settings import load_settings
from sophia_mcp.store import Store
from sophia_mcp.wiring import build_services
from sophia_mcp.workflows.knowledge import ingest_text, search

SENTENCES = [
    s.strip() for d in DOCUMENTS for s in re.split(r"(?<=[.!?])\s+", re.sub(r"#+ .*\n", "", d.text)) if len(s) > 30
]


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


async def index_at(size: int, queries: int) -> None:
    embedder = LocalEmbedder()
    rng = random.Random(size)
    texts = [" ".join(rng.choice(SENTENCES) for _ in range(3)) for _ in range(size)]
    vectors = embedder.embed_now(texts)
    store = Store(Path(tempfile.mkdtemp(prefix="sophia-vec-")) / "sophia.db")
    index = LocalVectorIndex(store)
    await index.bind(embedder.model, embedder.dimension)
    ids = [f"v{i}" for i in range(size)]
    for start in range(0, size, 5000):
        await index.upsert(ids[start : start + 5000], vectors[start : start + 5000],
                           [{"type": "note"} for _ in range(min(5000, size - start))])  # fmt: skip
    questions = embedder.embed_now([rng.choice(SENTENCES) for _ in range(queries)])
    await index.query(questions[0], 10)  # first query loads the matrix
    latencies, recalls = [], []
    for q in questions:
        started = time.perf_counter()
        found = await index.query(q, 10)
        latencies.append(time.perf_counter() - started)
        exact_scores = vectors @ q
        tenth = np.sort(exact_scores)[-10]
        # A hit counts when exact search ranks it in the top 10; ties at the 10th score (identical texts) all do.
        recalls.append(sum(exact_scores[int(m.id[1:])] >= tenth - 1e-6 for m in found) / 10)
    filtered = []
    for q in questions[:50]:
        started = time.perf_counter()
        await index.query(q, 10, {"type": "note"})
        filtered.append(time.perf_counter() - started)
    print(f"local index, {size:,} chunks: query p50 {pct(latencies, 50) * 1000:.2f} ms, p99 "
          f"{pct(latencies, 99) * 1000:.2f} ms; with a metadata filter p50 {pct(filtered, 50) * 1000:.2f} ms; "
          f"recall@10 vs exact {sum(recalls) / len(recalls):.3f}")  # fmt: skip
    store.close()


async def main(docs: int, sizes: list[int], queries: int) -> None:
    await ingestion(docs)
    for size in sizes:
        await index_at(size, queries)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    options = parser.parse_args()
    anyio.run(main, options.docs, options.sizes, options.queries)
