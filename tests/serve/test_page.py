"""The browser page at ``/`` in a real headless Chromium driven by Playwright, against a real ``tinymim serve``.

Pick or drop an image -> the top-k the API gives for the same bytes, the per-stage timing of the answer
(Server-Timing) and a latency history; errors shown in the page; an API-key prompt; and nothing fetched from
anywhere but the server. Skips, saying what is missing, where Chromium or Playwright is not installed
(``apt-get install -y chromium``; Playwright for Python is in the dev extra: it drives that browser, it never
downloads one).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.serve.helpers import image_bytes, start_server

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STAGES = ("decode", "preprocess", "queue", "compute", "encode")


@pytest.fixture(scope="module")
def browser():
    executable = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if not executable:
        pytest.skip("no browser: /usr/bin/chromium is missing (Debian/Ubuntu: apt-get install -y chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]' installs it)"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(executable), args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the live server; fails the test on any script error or request to another origin."""
    context = browser.new_context()
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    pg.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    local = (server.url, "blob:" + server.url, "data:")  # the page's own origin, its image preview, the empty icon
    pg.on("request", lambda req: None if req.url.startswith(local) else problems.append(f"outside: {req.url}"))
    pg.problems = problems
    yield pg
    context.close()


def _top5(server, data: bytes) -> list[str]:
    r = httpx.post(server.url + "/v1/classify?top_k=5", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["labels"]


def _drop(page, data: bytes, name: str, mime: str) -> None:
    """Drop a file on the drop zone, as a user dragging it from their desktop does."""
    transfer = page.evaluate_handle(
        """([bytes, name, mime]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            return dt;
        }""",
        [list(data), name, mime],
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def test_pick_an_image_see_top_k_timing_and_history(page, server):
    data = image_bytes(7)
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('tiny-vit')")
    assert "onnx-fp32" in page.text_content("#model")
    page.set_input_files("#file", files=[{"name": "seven.png", "mimeType": "image/png", "buffer": data}])
    page.wait_for_selector("#predictions li:nth-child(5)")
    shown = page.eval_on_selector_all("#predictions .label", "els => els.map(e => e.textContent)")
    assert shown == _top5(server, data)  # the page shows exactly what the API answers for these bytes
    scores = [float(s) for s in page.eval_on_selector_all("#predictions .score", "els => els.map(e => e.textContent)")]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    timing = dict(
        page.eval_on_selector_all(
            "#timing tbody tr", "rows => rows.map(r => [r.dataset.stage, r.cells[1].textContent])"
        )
    )
    assert all(float(timing[s]) >= 0 for s in STAGES) and float(timing["compute"]) > 0
    assert float(timing["round trip"]) >= float(timing["total in the server"]) > 0 and timing["batch"] == "1"
    assert page.locator("#history rect").count() == 1
    page.click("#again-20")
    page.wait_for_function("document.querySelectorAll('#history rect').length === 21", timeout=60_000)
    assert page.text_content("#history-summary").startswith("21 requests")
    assert page.problems == []


def test_drop_shows_errors_and_results(page, server):
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('model').textContent.includes('tiny-vit')")
    _drop(page, b"definitely not an image", "notes.txt", "text/plain")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error").startswith("415: unsupported Content-Type 'text/plain'")
    page.evaluate("document.getElementById('error').hidden = true")
    _drop(page, b"\x89PNG but broken", "broken.png", "image/png")
    page.wait_for_selector("#error:not([hidden])")
    assert "415" in page.text_content("#error") and "could not identify" in page.text_content("#error")
    data = image_bytes(11, fmt="JPEG")
    page.fill("#top-k", "3")
    _drop(page, data, "photo.jpg", "image/jpeg")
    page.wait_for_selector("#predictions li:nth-child(3)")
    assert page.is_hidden("#error") and page.locator("#predictions li").count() == 3
    r = httpx.post(server.url + "/v1/classify?top_k=3", content=data, headers={"content-type": "image/jpeg"})
    assert (
        page.eval_on_selector_all("#predictions .label", "e => e.map(x => x.textContent)")
        == r.json()["predictions"][0]["labels"]
    )
    assert [p for p in page.problems if not p.startswith("console error: Failed to load resource")] == []


def test_api_key_prompt(browser, tiny, tmp_path):
    srv = start_server(tiny.path, tmp_path, env={"TINYMIM_API_KEY": "s3cret-key"})
    context = browser.new_context()
    try:
        pg = context.new_page()
        pg.goto(srv.url + "/")
        pg.wait_for_selector("#key-box:not([hidden])")
        pg.fill("#api-key", "s3cret-key")
        pg.click("#key-save")
        pg.wait_for_function("document.getElementById('model').textContent.includes('tiny-vit')")
        pg.set_input_files("#file", files=[{"name": "a.png", "mimeType": "image/png", "buffer": image_bytes(2)}])
        pg.wait_for_selector("#predictions li")
        assert pg.is_hidden("#error")
    finally:
        context.close()
        srv.stop()
