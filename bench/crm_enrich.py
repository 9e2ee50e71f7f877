"""Enriching 1,000 contacts: Apollo bulk matches and HubSpot batch updates, against the rate-limit bound.

The fakes (tests/fakes/apollo.py, tests/fakes/hubspot.py) hold 1,000 contacts made from the demo's under new ids.
Apollo's bulk match takes 10 people per request and is throttled harder than anything else: by default 20 per
"minute", where this benchmark's minute lasts --minute seconds so the run is short; HubSpot takes 100 writes per
batch at --hubspot-rate requests per second. The bound is the longer of the two services' rate-limit floors; the
target is to stay within 10% of it, with at most 100 Apollo bulk requests and 10 HubSpot batch updates.
Run: python bench/crm_enrich.py
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sophia_mcp.app.backends import build_services
from sophia_mcp.demo.calls import generate_demo
from sophia_mcp.domain.crm import Contact
from sophia_mcp.domain.times import utcnow
from sophia_mcp.settings import load_settings
from sophia_mcp.workflows.enrichment import enrich_contacts
from tests.fakes import apollo, hubspot
from tests.fakes.server import serve


def many_contacts(n: int) -> tuple[list, list[Contact]]:
    """n distinct contacts, made by repeating the demo's under new ids and emails."""
    data = generate_demo(utcnow().date())
    contacts = []
    for i in range(n):
        base = data.contacts[i % len(data.contacts)]
        local, _, domain = (base.email or "x@x.example").partition("@")
        contacts.append(base.model_copy(update={"id": f"{70000000000 + i}", "email": f"{local}.{i}@{domain}"}))
    return data.clients, contacts


async def run(n: int, minute_s: float, bulk_per_minute: int, hubspot_rate: float) -> None:
    clients, contacts = many_contacts(n)
    a_state = apollo.state_from_demo(clients, contacts, miss_every=7, bulk_per_minute=bulk_per_minute,
                                     window_s=minute_s, retry_after=f"{minute_s / bulk_per_minute:.3f}")  # fmt: skip
    h_state = hubspot.state_from_demo(clients, contacts, per_ten_seconds=int(hubspot_rate * 10))
    with serve(apollo.apollo_app(a_state)) as a_url, serve(hubspot.hubspot_app(h_state)) as h_url:
        settings = load_settings(
            data_dir=Path(tempfile.mkdtemp(prefix="sophia-enrich-")),
            apollo={"backend": "apollo", "base_url": f"{a_url}{apollo.PREFIX}", "api_key": apollo.API_KEY,
                    "bulk_per_minute": bulk_per_minute * 60 / minute_s, "rate_per_second": 50, "max_concurrency": 4},
            hubspot={"backend": "hubspot", "base_url": h_url, "access_token": hubspot.ACCESS_TOKEN,
                     "rate_per_second": hubspot_rate, "max_concurrency": 2},
        )  # fmt: skip
        services = build_services(settings)
        started = time.perf_counter()
        try:
            report = await enrich_contacts(services, [c.id for c in contacts])
        finally:
            await services.aclose()
            services.close()
        elapsed = time.perf_counter() - started
    bulk = a_state.count("/people/bulk_match")
    single = a_state.count("/people/match")
    updates = h_state.count("POST", "/contacts/batch/update")
    hubspot_requests = len(h_state.requests)
    writes = Counter(i for i, _ in h_state.updates)
    apollo_floor = (bulk - 1) * minute_s / bulk_per_minute
    hubspot_floor = (hubspot_requests - 1) / hubspot_rate
    bound = max(apollo_floor, hubspot_floor)
    print(f"enriched {report.requested} contacts: {report.written} written, {report.failed} failed, "
          f"{report.matched} matched")  # fmt: skip
    print(f"  Apollo: {bulk} bulk matches (limit {math.ceil(n / 10)}) + {single} single; "
          f"{a_state.credits_consumed} credits; 429s drawn {a_state.throttled}")  # fmt: skip
    print(f"  HubSpot: {updates} batch updates (limit {math.ceil(n / 100)}) of {hubspot_requests} requests; "
          f"most writes to one contact {max(writes.values())}; 429s drawn {h_state.throttled}")  # fmt: skip
    print(f"  elapsed {elapsed:6.2f} s; bound {bound:6.2f} s")
    print(f"    Apollo {bulk} bulk at {bulk_per_minute} per {minute_s:g} s: {apollo_floor:.2f} s")
    print(f"    HubSpot {hubspot_requests} requests at {hubspot_rate:g}/s: {hubspot_floor:.2f} s")
    print(f"  ratio {elapsed / bound:.3f} (target <= 1.10)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--minute", type=float, default=3.0, help="seconds that stand for Apollo's minute")
    parser.add_argument("--bulk-per-minute", type=int, default=20)
    parser.add_argument("--hubspot-rate", type=float, default=9.0)
    options = parser.parse_args()
    anyio.run(run, options.contacts, options.minute, options.bulk_per_minute, options.hubspot_rate)
