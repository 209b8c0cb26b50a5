"""``/docs`` and ``/redoc`` in a real headless Chromium with no network but the service's own
address (hospital networks are often offline): Swagger UI and ReDoc must render the operations
from assets the service serves itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from playwright.sync_api import Page, Request, sync_playwright

from tests.conftest import LiveServer
from tests.contract.test_viewer import CHROMIUM, CHROMIUM_ARGS, _require_chromium

# Every other host resolves to nothing and any proxied request goes to a closed port, so a page
# that needs a CDN stays blank here as it would on an offline network.
OFFLINE_ARGS = [
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@contextmanager
def offline_page(server_url: str) -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page cut off from everything but ``server_url``, and the other URLs it asked
    for, each as ``"<resource type> <url>"``."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *OFFLINE_ARGS]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            elsewhere: list[str] = []

            def note(request: Request) -> None:
                if not request.url.startswith((server_url, "data:", "blob:")):
                    elsewhere.append(f"{request.resource_type} {request.url}")

            page.on("request", note)
            yield page, elsewhere
        finally:
            browser.close()


def _paths(server_url: str) -> set[str]:
    return set(httpx.get(f"{server_url}/openapi.json").json()["paths"])


def test_swagger_ui_renders_every_operation_offline(live_server: LiveServer) -> None:
    _require_chromium()
    with offline_page(live_server.url) as (page, elsewhere):
        page.goto(f"{live_server.url}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        shown = set(page.eval_on_selector_all(
            ".opblock-summary-path", "nodes => nodes.map(n => n.dataset.path || n.textContent)"
        ))  # fmt: skip
        assert page.title() == "polypserve - Swagger UI"
        # Opening an operation shows its parameters: the UI works, not only its first paint.
        detect = page.locator(".opblock-post", has=page.locator("[data-path='/v1/detect']"))
        detect.locator(".opblock-summary").click()
        detect.get_by_text("score_threshold").first.wait_for()
    assert elsewhere == [], f"the page asked for other origins: {elsewhere}"
    assert {p.replace("\u200b", "") for p in shown} == _paths(live_server.url)


def test_redoc_renders_the_operations_offline(live_server: LiveServer) -> None:
    _require_chromium()
    with offline_page(live_server.url) as (page, elsewhere):
        page.goto(f"{live_server.url}/redoc")
        page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
        operations = page.eval_on_selector_all(
            "[data-section-id^='operation/']", "nodes => nodes.length"
        )
    # ReDoc's "API docs by Redocly" footer logo is the one thing it takes from elsewhere: the
    # page renders without it.
    assert elsewhere in ([], ["image https://cdn.redoc.ly/redoc/logo-mini.svg"]), elsewhere
    assert operations >= len(_paths(live_server.url))
