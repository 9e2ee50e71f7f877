"""The dashboard: built through the composite server, served as a resource and an MCP Apps UI, its link posted;
opened in a real headless Chromium with no console message and no network request, its charts drawn."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from PIL import Image

from sophia_mcp.http.serving import public_url
from sophia_mcp.servers.composite import create_server
from tests.support.processes import http_server
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids, outbox_rows

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RED, GREEN, BLUE = (0xC0, 0x39, 0x2B), (0x2E, 0x8B, 0x57), (0x2C, 0x6F, 0xBB)
TOKEN = "s3cret-token-for-tests-0123456789"


async def _build(data_dir: Path, request: str) -> dict[str, Any]:
    settings = make_settings(data_dir, health={"threshold": 80})
    async with Client(create_server(settings)) as client:
        for call_id in newest_call_ids(data_dir, 30):
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        report = structured(await client.call_tool("build_dashboard", {"request": request, "requested_by": "Maria"}))
        tools = {t.name: t for t in (await client.list_tools()).tools}
        page = await client.read_resource(report["uri"])
        ui = await client.read_resource("ui://sophia/dashboard")
        with pytest.raises(MCPError, match="No dashboard"):
            await client.read_resource("sophia://dashboards/dashboard-19990101-000000")
    return {"report": report, "tool": tools["build_dashboard"], "page": page, "ui": ui}


def build(data_dir: Path, request: str) -> dict[str, Any]:
    return anyio.run(_build, data_dir, request)


def test_the_dashboard_is_a_resource_an_app_ui_and_a_posted_link(data_dir: Path) -> None:
    out = build(data_dir, "Client health and competitor mentions")
    report = out["report"]
    assert report["panels"] == ["health", "competitors"]
    html = Path(report["path"]).read_text()
    assert out["page"].contents[0].text == html
    assert out["ui"].contents[0].mime_type == "text/html;profile=mcp-app" and out["ui"].contents[0].text == html
    assert out["tool"].meta == {"ui": {"resourceUri": "ui://sophia/dashboard"}}
    assert (
        "<script" not in html
        and "default-src 'none'" in html
        and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    )
    assert (report["posted"]["target"], report["posted"]["status"]) == ("#dashboards", "delivered")
    posted = [status for key, status in outbox_rows(data_dir) if key.startswith(f"dashboard:{report['name']}@")]
    assert posted == ["delivered"]


def test_a_request_too_short_to_title_a_dashboard_is_refused(data_dir: Path) -> None:
    async def read() -> str:
        async with Client(create_server(make_settings(data_dir))) as client:
            result = await client.call_tool("build_dashboard", {"request": "x"})
            return text_of(result)

    assert "request" in anyio.run(read)


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason="Chromium is not installed here")
def test_it_opens_in_headless_chromium_with_no_errors_no_requests_and_drawn_charts(
    data_dir: Path, tmp_path: Path
) -> None:
    assert CHROMIUM, "CI installs Chromium (see .ci/run)"
    out = build(data_dir, "Client health, trend, revenue and competitors")
    page = Path(out["report"]["path"])

    # Every request the browser makes goes to this proxy, which counts it; a dashboard must make none.
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen()
    proxy.settimeout(0.2)
    requests: list[bytes] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            try:
                connection, _ = proxy.accept()
            except OSError:
                continue
            requests.append(connection.recv(200))
            connection.close()

    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    shot = tmp_path / "dashboard.png"
    try:
        browser = subprocess.run(
            [
                CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability", "--no-pings",
                "--disable-client-side-phishing-detection", "--safebrowsing-disable-auto-update",
                "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,"
                "AutofillServerCommunication,CertificateTransparencyComponentUpdater,SigninInterceptBubble",
                "--allow-browser-signin=false", f"--proxy-server=http://127.0.0.1:{proxy.getsockname()[1]}",
                "--proxy-bypass-list=<-loopback>", "--enable-logging=stderr", "--v=0", "--window-size=900,2400",
                f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", page.as_uri(),
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        done.set()
        counter.join(timeout=2)
        proxy.close()
    assert browser.returncode == 0, browser.stderr[-2000:]
    console = [line for line in browser.stderr.splitlines() if ":CONSOLE" in line]
    # Chromium's own services (component updates, sign-in) call home whatever the page does; the page's own
    # requests would be any others (and CSP would log a console message for each).
    from_page = [r for r in requests if not re.search(rb"^\S+ (https?://)?[\w.-]*(google\.com|googleapis\.com)[:/]", r)]
    assert console == [] and from_page == []
    image = Image.open(shot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000) or []
    drawn = {c: n for n, c in colours if c in (RED, GREEN, BLUE)}
    # Health bars under and over the threshold, and the blue of the trend, ARR and competitor charts.
    assert drawn.get(RED, 0) > 500 and drawn.get(GREEN, 0) > 500 and drawn.get(BLUE, 0) > 2000, drawn


def posted_text(data_dir: Path, name: str) -> str:
    """The message the dashboard's channel was sent."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        [(text,)] = conn.execute(
            "SELECT json_extract(payload, '$.text') FROM outbox WHERE key LIKE ?", (f"dashboard:{name}@%",)
        ).fetchall()
    return str(text)


def test_on_stdio_the_message_says_plainly_where_the_file_is(data_dir: Path) -> None:
    report = build(data_dir, "Client health")["report"]
    text = posted_text(data_dir, report["name"])
    assert report["url"] is None
    assert f"It is a file on the machine that runs sophia-mcp ({socket.gethostname()}): {report['path']}" in text
    assert "file://" not in text and f"sophia://dashboards/{report['name']}" in text


@pytest.mark.anyio
async def test_the_posted_url_serves_the_dashboard_to_the_token_only_and_nothing_outside_its_folder(
    data_dir: Path,
) -> None:
    with http_server(data_dir, "http", server="composite", SOPHIA_HTTP__BEARER_TOKEN=TOKEN) as base:
        authorised = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
        async with Client(streamable_http_client(f"{base}/mcp", http_client=authorised)) as client:
            report = structured(await client.call_tool("build_dashboard", {"request": "client health"}))
        url = f"{base}/dashboards/{report['name']}"
        token = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=10) as http:
            without = await http.get(url)
            wrong = await http.get(url, headers={"Authorization": "Bearer nope"})
            page = await http.get(url, headers=token)
            others = [
                (await http.get(f"{base}/dashboards/{name}", headers=token)).status_code
                for name in ("dashboard-19990101-000000", "sophia.db", "..%2Fsophia.db", "%2E%2E")
            ]
            rebound = await http.get(url, headers=token | {"Host": "evil.example.com"})
    html = await anyio.Path(report["path"]).read_text()
    assert report["url"] == url and url in posted_text(data_dir, report["name"])
    assert (without.status_code, wrong.status_code) == (401, 401) and "<html" not in without.text
    assert page.status_code == 200 and page.text == html
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert others == [404] * 4 and rebound.status_code == 421


def test_the_public_url_is_the_configured_one_or_the_address_served(data_dir: Path) -> None:
    configured = make_settings(data_dir, http={"public_url": "https://sophia.example.com/"})
    assert public_url(configured, "0.0.0.0", 8000) == "https://sophia.example.com"
    assert public_url(make_settings(data_dir), "127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert public_url(make_settings(data_dir), "::1", 8123) == "http://[::1]:8123"
