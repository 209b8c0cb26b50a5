"""Contract tests of WS /v1/stream, in-process and against a live uvicorn."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient
from websockets.sync.client import connect as websocket_connect

from service.app import create_app
from service.config import Settings
from service.stream.framing import build_frame_message
from tests.conftest import LiveServer
from tests.contract.stream_clients import (
    StreamClient,
    StreamClosedError,
    in_process_stream,
    socket_stream,
)
from tests.images import encode, solid_rgb

Connect = Callable[[str], AbstractContextManager[StreamClient]]
RED = encode(solid_rgb(200, 100, (220, 0, 0)), "JPEG", quality=90)
# A 12-megapixel PNG of 40 kB: it arrives at once but decodes slowly, so a burst must drop.
_Y, _X = np.mgrid[0:3000, 0:4000]
SLOW = encode(np.stack([_X % 256, _Y % 256, (_X + _Y) % 256], -1).astype(np.uint8), "PNG")


@pytest.fixture(params=["asgi", "uvicorn"])
def connect(request: pytest.FixtureRequest, tiny_repo: Path) -> Iterator[Connect]:
    if request.param == "asgi":
        app = create_app(Settings(models_dir=tiny_repo, intra_op_threads=1))
        with TestClient(app) as client:
            yield lambda query: in_process_stream(client, query)
    else:
        server: LiveServer = request.getfixturevalue("live_server")
        yield lambda query: socket_stream(server.url, query)


def _results_until_report(
    stream: StreamClient,
) -> tuple[list[dict[str, object]], dict[str, object]]:
    stream.send('{"type": "report"}')
    results = []
    while True:
        message = stream.receive()
        if message["type"] == "report":
            return results, message
        results.append(message)


def test_a_frame_comes_back_with_its_id_timestamp_boxes_and_timings(connect: Connect) -> None:
    with connect("min_hits=1") as stream:
        ready = stream.receive()
        assert ready["type"] == "ready" and ready["model"]["name"] == "tiny-detector"
        assert ready["smoothing"]["on_threshold"] == 0.4
        stream.send(build_frame_message(RED, "frame-1", 1700000000.25))
        result = stream.receive()
    assert result["type"] == "result"
    assert (result["frame_id"], result["timestamp"]) == ("frame-1", 1700000000.25)
    assert result["image"] == {"width": 200, "height": 100}
    (detection,) = result["detections"]
    assert detection["box"] == pytest.approx([25.0, 0.0, 125.0, 75.0], abs=0.1)
    (track,) = result["tracks"]
    assert track["track_id"] == 1 and track["age"] == 1
    assert {"queue", "decode", "preprocess", "inference", "postprocess", "total"} <= set(
        result["timing_ms"]
    )
    assert result["dropped"] == 0


def test_smoothing_holds_back_a_track_until_min_hits(connect: Connect) -> None:
    with connect("min_hits=3&window=3") as stream:
        stream.receive()
        shown = []
        for index in range(4):
            stream.send(build_frame_message(RED, index))
            shown.append(len(stream.receive()["tracks"]))
    assert shown == [0, 0, 1, 1]


def test_latest_frame_wins_and_drops_are_reported_exactly(connect: Connect) -> None:
    with connect("") as stream:
        stream.receive()
        for index in range(25):
            stream.send(build_frame_message(SLOW, index))
        # Wait for the last frame's result: it is never dropped, being the latest.
        results = []
        while not results or results[-1]["frame_id"] != 24:
            results.append(stream.receive())
        more, report = _results_until_report(stream)
    results += more
    frames = report["frames"]
    assert frames["received"] == 25
    assert frames["dropped"] > 0
    assert frames["processed"] == len(results)
    assert frames["processed"] + frames["dropped"] + frames["errors"] == 25
    assert sum(r["dropped"] for r in results) == frames["dropped"]
    ids = [r["frame_id"] for r in results]
    assert ids == sorted(ids)  # newer frames only, in order


def test_a_bad_frame_gets_an_error_and_the_session_goes_on(connect: Connect) -> None:
    with connect("") as stream:
        stream.receive()
        stream.send(build_frame_message(b"\xff\xd8 not really a jpeg", "bad"))
        error = stream.receive()
        assert error["type"] == "error" and error["frame_id"] == "bad" and error["error"]
        stream.send(b"neither image nor header")
        assert stream.receive()["type"] == "error"
        stream.send(build_frame_message(RED, "good"))
        assert stream.receive()["frame_id"] == "good"
        _, report = _results_until_report(stream)
    assert report["frames"]["errors"] == 2 and report["frames"]["processed"] == 1


def test_hostile_json_gets_an_error_and_the_session_goes_on(connect: Connect) -> None:
    nested = b"[" * 2000  # inside the 4 KiB header limit, past Python's recursion limit
    with connect("") as stream:
        stream.receive()
        stream.send(struct.pack(">I", len(nested)) + nested + RED)
        assert "not valid JSON" in stream.receive()["error"]
        stream.send("[" * 100_000)
        assert stream.receive()["type"] == "error"
        for header in (b'{"timestamp": 1e400}', b'{"timestamp": NaN}'):
            stream.send(struct.pack(">I", len(header)) + header + RED)
            assert stream.receive()["type"] == "error"  # strict JSON: no bare NaN back
        stream.send(build_frame_message(RED, "good", 1.5))
        result = stream.receive()
        assert result["frame_id"] == "good" and result["timestamp"] == 1.5
        _, report = _results_until_report(stream)
    assert report["frames"]["errors"] == 3 and report["frames"]["processed"] == 1


def test_idle_sessions_are_closed_and_free_their_places(tiny_repo: Path) -> None:
    # Real sockets: the websockets client answers the server's pings, which are not activity.
    server = LiveServer(
        tiny_repo, POLYPSERVE_MAX_STREAM_SESSIONS="2", POLYPSERVE_STREAM_IDLE_TIMEOUT_S="1.5"
    )
    try:
        server.wait_until_ready()
        with socket_stream(server.url, "") as first, socket_stream(server.url, "") as second:
            first.receive(), second.receive()
            with socket_stream(server.url, "") as third, pytest.raises(StreamClosedError) as full:
                third.receive()
            assert full.value.code == 1013
            for idle in (first, second):
                assert idle.receive()["type"] == "report"
                with pytest.raises(StreamClosedError) as closed:
                    idle.receive()
                assert closed.value.code == 1001 and "idle" in closed.value.reason
        with socket_stream(server.url, "") as again:
            assert again.receive()["type"] == "ready"
            again.send(build_frame_message(RED, "busy"))
            assert again.receive()["frame_id"] == "busy"
    finally:
        server.stop()


def test_report_on_close_request_lists_tracks_and_latency(connect: Connect) -> None:
    with connect("min_hits=2") as stream:
        stream.receive()
        for index in range(3):
            stream.send(build_frame_message(RED, index))
            stream.receive()
        stream.send('{"type": "close"}')
        report = stream.receive()
        with pytest.raises(StreamClosedError) as closed:
            stream.receive()
    assert closed.value.code == 1000
    assert report["type"] == "report" and report["alerts"] == 1
    (track,) = report["tracks"]
    assert track["first_seen_frame"] == 0 and track["frames_to_first_display"] == 1
    assert (
        report["latency_ms"]["p50"] > 0
        and report["latency_ms"]["max"] >= report["latency_ms"]["p99"]
    )


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("model=nope", "unknown model"),
        ("model=tiny-classifier", "not detection"),
        ("min_hits=9&window=3", "min_hits"),
        ("surprise=1", "surprise"),
    ],
)
def test_invalid_parameters_close_with_1008(connect: Connect, query: str, needle: str) -> None:
    with connect(query) as stream:
        error = stream.receive()
        assert error["type"] == "error" and needle in error["error"]
        with pytest.raises(StreamClosedError) as closed:
            stream.receive()
    assert closed.value.code == 1008


def test_session_cap_closes_with_1013_and_a_disconnect_leaves_nothing(tiny_repo: Path) -> None:
    app = create_app(Settings(models_dir=tiny_repo, max_stream_sessions=1, max_frame_bytes=5000))
    with TestClient(app) as client:
        with in_process_stream(client, "") as first:
            first.receive()
            with (
                in_process_stream(client, "") as second,
                pytest.raises(StreamClosedError) as refused,
            ):
                second.receive()
            assert refused.value.code == 1013
            first.send(b"\xff\xd8" + b"\0" * 6000)
            assert "over the limit" in first.receive()["error"]
            first.send(build_frame_message(SLOW, 1))  # disconnect while it is in flight
        assert app.state.stream_sessions == set()
        with in_process_stream(client, "") as again:
            assert again.receive()["type"] == "ready"


def test_an_exception_in_one_frame_is_an_error_and_the_session_goes_on(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.stream import frame_results

    real = frame_results.select_detections
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(frame_results, "select_detections", flaky)
    app = create_app(Settings(models_dir=tiny_repo))
    with TestClient(app) as client, in_process_stream(client, "") as stream:
        stream.receive()
        stream.send(build_frame_message(RED, "first"))
        failed = stream.receive()
        assert failed == {
            "type": "error",
            "frame_index": 0,
            "frame_id": "first",
            "timestamp": None,
            "error": "internal error",
        }
        stream.send(build_frame_message(RED, "second"))
        assert stream.receive()["frame_id"] == "second"


def test_the_live_server_does_not_deflate_frames(live_server: LiveServer) -> None:
    # JPEG/PNG frames do not compress; deflating them cost a flat-out client its whole core.
    url = live_server.url.replace("http", "ws") + "/v1/stream"
    with websocket_connect(url) as ws:  # the client offers permessage-deflate
        assert ws.protocol.extensions == []
        assert json.loads(ws.recv())["type"] == "ready"


def test_a_frame_gets_the_same_detections_over_rest_and_the_stream(tiny_repo: Path) -> None:
    # An odd size puts the boxes at fractions of a pixel, and a dull red gives a fractional
    # score: both protocols must report them with the same rounding and labels.
    frame = encode(solid_rgb(203, 117, (190, 60, 40)))
    app = create_app(Settings(models_dir=tiny_repo, intra_op_threads=1))
    with TestClient(app) as client:
        rest = client.post(
            "/v1/detect?score_threshold=0.4", content=frame, headers={"content-type": "image/png"}
        )
        with in_process_stream(client, "min_hits=1") as stream:
            stream.receive()
            stream.send(build_frame_message(frame, "odd"))
            streamed = stream.receive()
    (expected,) = rest.json()["results"]
    assert expected["detections"] and streamed["detections"] == expected["detections"]
    assert any(c != round(c, 1) for d in expected["detections"] for c in d["box"])
