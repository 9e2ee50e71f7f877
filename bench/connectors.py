"""Polling connectors at size: a watched folder rescanned, and a Gong poll paced by Gong's limit.

1. The watched folder: N files (default 2,000 of 20 KB). Each scan of an unchanged folder must not read every
   file again: a file's hash is reused while its size and modification time stay. Interleaved, a full scan (every
   file hashed: the anchor) and a rescan of the unchanged folder, then a whole `watch-folder` pass on it (cursor
   read, scan, nothing kept, cursor written); printed as ratios to the anchor.
2. Gong: a first poll of 1,000 calls (10 pages) from the Gong fake at 3 requests per second, against the floor
   the limit allows ((pages - 1) / rate), drawing no 429; a second poll (nothing new) keeps nothing.
Run: python bench/connectors.py [--files N] [--rounds R]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.settings import load_settings
from sophia_mcp.workflows.connectors import FOLDER, poll_gong_calls, scan_folder, scan_watched_folder
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, GongState, gong_app
from tests.fakes.server import serve
from tests.support.exports import EXPORT


def folder_bench(files: int, rounds: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="sophia-watch-"))
    watched = root / "watched"
    for i in range(files):
        sub = watched / f"team{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"note{i}.md").write_text(f"# Note {i}\n\n" + ("lorem ipsum dolor sit amet " * 750)[:20_000])
    settings = load_settings(data_dir=root / "data", knowledge={"roots": [str(root)], "watch": str(watched)})
    services = build_services(settings)
    known = scan_folder(watched.resolve(), {})

    async def set_cursor() -> None:
        await services.connector_cursors.set(FOLDER, json.dumps(known))

    anyio.run(set_cursor)
    full, rescan, passes = [], [], []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            scan_folder(watched.resolve(), {})
            full.append(time.perf_counter() - started)
            started = time.perf_counter()
            again = scan_folder(watched.resolve(), known)
            rescan.append(time.perf_counter() - started)
            assert again == known
            started = time.perf_counter()
            summary = anyio.run(scan_watched_folder, services)
            passes.append(time.perf_counter() - started)
            assert summary["changed"] == 0 and summary["removed"] == 0, summary
    finally:
        services.close()
    anchor = statistics.median(full)
    print(f"watched folder, {files} files of 20 KB, {rounds} rounds interleaved (medians):")
    print(f"  full scan, every file hashed (anchor): {anchor * 1000:8.1f} ms   1.00x")
    print(f"  rescan of the unchanged folder:       {statistics.median(rescan) * 1000:8.1f} ms   "
          f"{statistics.median(rescan) / anchor:.2f}x")  # fmt: skip
    print(f"  whole watch-folder pass, unchanged:   {statistics.median(passes) * 1000:8.1f} ms   "
          f"{statistics.median(passes) / anchor:.2f}x")  # fmt: skip


def gong_bench(calls: int, rate: float) -> None:
    template = json.loads((EXPORT / "calls_extensive.json").read_text())["calls"][0]
    state_calls = []
    now = utcnow()  # calls of the last hours: a first poll reads 24 hours back by default
    for i in range(calls):
        call = copy.deepcopy(template)
        call["metaData"] |= {"id": f"{9100000000000000000 + i}", "started": iso(now - timedelta(minutes=i))}
        state_calls.append(call)
    state = GongState(calls=state_calls, transcripts={}, page_size=100, rate_per_second=rate, retry_after="1")
    with serve(gong_app(state)) as url:
        settings = load_settings(
            data_dir=Path(tempfile.mkdtemp(prefix="sophia-gong-poll-")),
            gong={"backend": "gong", "base_url": url, "access_key": ACCESS_KEY, "access_key_secret": ACCESS_SECRET,
                  "rate_per_second": rate, "max_concurrency": 3},
        )  # fmt: skip
        services = build_services(settings)

        async def two_polls() -> tuple[dict[str, Any], float, int, dict[str, Any]]:
            try:
                started = time.perf_counter()
                first = await poll_gong_calls(services)
                took = time.perf_counter() - started
                pages = len(state.requests)
                return first, took, pages, await poll_gong_calls(services)
            finally:
                await services.aclose()

        try:
            first, took, pages, second = anyio.run(two_polls)
        finally:
            services.close()
    floor = (pages - 1) / rate
    print(f"gong-calls, {calls} calls in {pages} pages at {rate:g} requests/s:")
    print(f"  first poll: {took:.2f} s against the limit's floor {floor:.2f} s ({took / floor:.2f}x), "
          f"{state.throttled} answered 429; kept {first['new']} new")  # fmt: skip
    print(f"  second poll (the {settings.connectors.gong_lookback_hours:g} h lookback): read {second['read']} again, "
          f"kept {second['new']} new")  # fmt: skip


def main() -> None:
    """Both benches, at the sizes given."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    folder_bench(args.files, args.rounds)
    gong_bench(args.calls, 3.0)


if __name__ == "__main__":
    main()
