"""The browser viewer in a real headless Chromium against a live uvicorn: it plays a frame
sequence over the WebSocket, draws boxes over the picture and shows the figures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer
from tests.images import encode, solid_rgb
from tests.service.video.conftest import cvc_video, detector_repo, detector_server  # noqa: F401

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing; .ci/run installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def test_viewer_page_is_served_with_security_headers(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/demo")
    assert response.status_code == 200 and '<canvas id="overlay">' in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    script = httpx.get(f"{live_server.url}/static/viewer.js")
    assert script.status_code == 200 and "/v1/stream" in script.text
    body = httpx.get(f"{live_server.url}/").text.split("<body>")[1]
    assert "http" not in body  # no CDN or other origin: the page works offline


def play_frames_in_browser(
    server_url: str, frames_dir: Path, query: str, screenshot: Path, fps: int = 15
) -> dict[str, object]:
    """Open the viewer, play the images in ``frames_dir`` and return what the page shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The CSP forbids eval, which the test harness itself needs; the header is tested above.
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{server_url}/?{query}")
            page.set_input_files("#images", str(frames_dir))
            page.fill("#fps", str(fps))
            page.click("#start")
            page.wait_for_function(
                "Number(document.getElementById('overlay').dataset.boxesDrawn || 0) >= 3",
                timeout=30_000,
            )
            page.wait_for_function("document.getElementById('stat-latency').textContent !== '–'")
            green_pixels = page.evaluate(
                """() => {
                    const c = document.getElementById('overlay');
                    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                    let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 200 && d[i] < 50) n++;
                    return n;
                }"""
            )
            page.screenshot(path=str(screenshot))
            # a folder ends with the session report, once every frame is answered
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('done:')",
                timeout=60_000,
            )
            return {
                "console": console,
                "green_pixels": green_pixels,
                "fps": float(page.text_content("#stat-fps") or 0),
                "latency": page.text_content("#stat-latency"),
                "dropped": page.text_content("#stat-dropped"),
                "status": page.text_content("#status"),
            }
        finally:
            browser.close()


def test_viewer_streams_frames_and_draws_boxes(live_server: LiveServer, tmp_path: Path) -> None:
    _require_chromium()
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(40):
        # The tiny detector scores the whole frame's redness; its boxes are fixed.
        colour = (0, 200, 0) if index < 2 else (220, 0, 0)
        (frames / f"{index:03d}.jpg").write_bytes(encode(solid_rgb(320, 240, colour), "JPEG"))
    seen = play_frames_in_browser(live_server.url, frames, "min_hits=2", tmp_path / "viewer.png")
    assert seen["green_pixels"] > 100, seen  # box outlines drawn on the overlay
    assert seen["fps"] > 0 and str(seen["latency"]).isdigit(), seen
    assert "error" not in str(seen["status"]) and "closed (" not in str(seen["status"]), seen
    assert str(seen["status"]).startswith("done: 40 processed, 0 dropped"), seen


def test_viewer_answers_every_frame_of_a_folder_of_large_images(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """A folder is a recording: each 1080p image gets its result before the socket closes, and
    nothing is sent to a closing socket."""
    _require_chromium()
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(10):
        colour = (220, 0, 0) if index % 2 else (0, 0, 200)
        (frames / f"{index}.jpg").write_bytes(encode(solid_rgb(1920, 1080, colour), "JPEG"))
    seen = play_frames_in_browser(live_server.url, frames, "min_hits=1", tmp_path / "v.png", 30)
    assert str(seen["status"]).startswith("done: 10 processed, 0 dropped"), seen
    assert not [line for line in seen["console"] if "CLOSING or CLOSED" in line], seen


def test_viewer_plays_a_real_colonoscopy_sequence_with_the_shipped_detector(
    tmp_path: Path,
) -> None:
    """A real CVC-ClinicDB sequence through the shipped detector: boxes drawn on real frames."""
    _require_chromium()
    from tests.conftest import DATA_ROOT, REPO_ROOT

    sequences = DATA_ROOT / "cvc-clinicdb" / "sequences.csv"
    if not (REPO_ROOT / "models" / "polyp-detector").is_dir() or not sequences.is_file():
        if os.environ.get("CI"):
            pytest.fail("the shipped detector or the CVC-ClinicDB data is missing")
        pytest.skip("the shipped detector or the CVC-ClinicDB data is missing")
    rows = [line.split(",") for line in sequences.read_text().split()[1:]]
    frames = tmp_path / "sequence"
    frames.mkdir()
    # Sequence 1, in order, repeated so the stream runs long enough to be watched.
    ids = [frame for frame, sequence in rows if sequence == "1"]
    for repeat in range(3):
        for index, frame in enumerate(ids):
            source = DATA_ROOT / "cvc-clinicdb" / "images" / f"{frame}.png"
            (frames / f"{repeat:02d}-{index:03d}.png").write_bytes(source.read_bytes())
    server = LiveServer(REPO_ROOT / "models")
    try:
        server.wait_until_ready(timeout=120)
        seen = play_frames_in_browser(server.url, frames, "", tmp_path / "real.png", fps=10)
    finally:
        server.stop()
    assert seen["green_pixels"] > 100, seen
    assert seen["fps"] > 0 and str(seen["latency"]).isdigit(), seen


def test_viewer_analyses_a_recording_and_seeks_to_a_track(
    detector_server: LiveServer,  # noqa: F811
    cvc_video: Path,  # noqa: F811
) -> None:
    """Recording mode: a real sequence uploaded as a video job, its progress shown, then the
    annotated video plays with the report's tracks beside it; a track seeks the video."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
            page.goto(f"{detector_server.url}/")
            page.select_option("#source", "recording")
            page.set_input_files("#recording-file", str(cvc_video))
            page.evaluate(  # every status the page shows, to see the progress went by
                """() => { window.statuses = [];
                    new MutationObserver(() => window.statuses.push(
                        document.getElementById('status').textContent)).observe(
                        document.getElementById('status'), { childList: true }); }"""
            )
            page.click("#start")
            page.wait_for_function(
                "document.getElementById('status').textContent.startsWith('done:')",
                timeout=60_000,
            )
            page.wait_for_function("document.getElementById('recording').duration > 0")
            statuses = page.evaluate("window.statuses")
            duration = page.evaluate("document.getElementById('recording').duration")
            starts = page.eval_on_selector_all(
                "#tracks button", "buttons => buttons.map(b => Number(b.dataset.time))"
            )
            latest = max(range(len(starts)), key=lambda i: starts[i])
            page.click(f"#tracks li:nth-child({latest + 1}) button")
            seeked = page.evaluate("document.getElementById('recording').currentTime")
            status = page.text_content("#status")
        finally:
            browser.close()
    assert any(s.startswith(("queued: ", "running: ")) and "/25 frames" in s for s in statuses)
    assert status == f"done: 25 frames analysed, {len(starts)} tracks", status
    assert abs(duration - 25 / 30) < 0.05, duration
    assert starts and starts[latest] > 0, starts
    assert abs(seeked - starts[latest]) < 0.01, (seeked, starts)
