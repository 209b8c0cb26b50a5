"""Serving benchmark: polypserve against the in-process ceiling and a naive FastAPI service.

    python -m tests.perf.bench [--models-dir models] [--seconds 6] [--runs 3]

For each shipped image model and each frame size it measures, in one run:
  (a) ceiling: an in-process loop of decode + preprocess + ONNX Runtime + postprocess;
  (b) naive: ``tests/perf/naive_service.py`` under uvicorn;
  (c) polypserve under uvicorn;
with wrk at each concurrency, and prints throughput, p50, p99 and the ratios c/a and c/b
(medians of ``--runs`` runs; the ceiling is the median of loops run around the servers' runs).
At concurrency 1 it also prints the p50 minus the ceiling's per-item time, each run paired with
a ceiling loop just before it. Then overload runs: arrivals at 4x polypserve's capacity, without
and with a latency budget.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from service.config import Settings
from service.dataplane.imaging import open_image
from service.dataplane.predict import classify, detect, prepare_batch, segment
from service.dataplane.timing import StageTimer
from service.repository.model_version import load_version
from service.repository.registry import discover
from service.server.memory import keep_freed_memory
from tests.perf import servers
from tests.perf.load import LoadResult, run_wrk, wrk_available
from tests.perf.overload import overload, saturate

# ---- configuration --------------------------------------------------------------------------
MODELS = ["polyp-detector", "polyp-classifier", "polyp-segmenter"]
FRAMES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
CONCURRENCY = [1, 8, 32]
# The latency budget of the second overload run: two frames at 30 fps
# (see service.scheduling.admission).
OVERLOAD_BUDGET_MS = 60
SAMPLE = Path("../shared/data/kvasir-seg/images/cju0qkwl35piu0993l0dewei2.jpg")
ROUTES = {
    "detection": "/v1/detect",
    "classification": "/v1/classify",
    "segmentation": "/v1/segment",
}
# ---------------------------------------------------------------------------------------------


def make_frame(size: tuple[int, int]) -> bytes:
    """A real colonoscopy image at the frame size when the data is here, else a gradient."""
    if SAMPLE.is_file():
        image = Image.open(SAMPLE).convert("RGB").resize(size)
    else:
        y, x = np.mgrid[0 : size[1], 0 : size[0]]
        image = Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def ceiling(models_dir: Path, name: str, frame: bytes) -> Callable[[float], float]:
    """The in-process loop, one item at a time, as the service computes them (with the
    service's allocator settings too): a function of seconds that returns items per second."""
    settings = Settings(models_dir=models_dir)
    keep_freed_memory(settings.malloc_keep_bytes)
    version_dir = _latest(models_dir, name)
    model = load_version(name, int(version_dir.name), version_dir, settings)
    assert model.manifest is not None and model.session is not None
    manifest, session = model.manifest, model.session

    def rate(seconds: float) -> float:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            image = open_image(frame, max_pixels=40_000_000)
            batch, placements = prepare_batch(model, [image], StageTimer())
            raw = session.run({manifest.inputs[0].name: batch}, manifest.output_names())
            outputs = dict(zip(manifest.output_names(), raw, strict=True))
            if manifest.task == "detection":
                detect(model, outputs, placements, 0.4, 0.45, 100)
            elif manifest.task == "classification":
                classify(model, outputs, 5)
            else:
                segment(model, outputs, placements)
            count += 1
        return count / (time.perf_counter() - start)

    return rate


# wrk ends a run by closing its connections with requests in flight; the server still finishes
# those (up to 32 frames of work), and the next run's first requests would find their places
# taken and get 503. A pause lets them drain.
PAUSE_BETWEEN_RUNS_S = 1.0


def load_runs(
    url: str,
    body: Path,
    concurrency: int,
    seconds: float,
    runs: int,
    before_each: Callable[[], object] = lambda: None,
) -> list[LoadResult]:
    results = []
    for _ in range(runs):
        time.sleep(PAUSE_BETWEEN_RUNS_S)
        before_each()
        results.append(run_wrk(url, body, "image/jpeg", concurrency, seconds))
    return results


def median_of(results: list[LoadResult]) -> LoadResult:
    return LoadResult(
        throughput=statistics.median(r.throughput for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        statuses={},
        socket_errors=sum(r.socket_errors for r in results),
    )


def compare(
    models_dir: Path,
    name: str,
    task: str,
    body: Path,
    concurrency: list[int],
    seconds: float,
    runs: int,
) -> tuple[dict[str, dict[int, LoadResult]], float, float | None]:
    """The naive service and polypserve at each concurrency, and the ceiling; returns their
    median loads by kind and concurrency, the ceiling's median rate, and the margin at
    concurrency 1 (p50 minus the ceiling's per-item time).

    The ceiling runs before, between and after the two servers, and right before each of
    polypserve's concurrency-1 runs: its median is the machine's speed over the same minutes,
    and each concurrency-1 run is compared with the loop just before it, so that a slow minute
    does not land on one side of the margin only.
    """
    rate = ceiling(models_dir, name, body.read_bytes())
    rates = [rate(seconds)]
    paired_item_ms: list[float] = []

    def pair() -> None:
        paired_item_ms.append(1000 / rate(seconds / 2))

    measured: dict[str, dict[int, LoadResult]] = {}
    margin = None
    model_dir = models_dir / name
    for kind in ("naive", "polypserve"):
        server = (
            servers.naive(_latest(models_dir, name))
            if kind == "naive"
            else servers.polypserve(model_dir)
        )
        url = server.url + ("/predict" if kind == "naive" else ROUTES[task])
        measured[kind] = {}
        try:
            for c in concurrency:
                paired = kind == "polypserve" and c == 1
                results = load_runs(url, body, c, seconds, runs, pair if paired else lambda: None)
                if paired:
                    margin = statistics.median(
                        r.p50_ms - item for r, item in zip(results, paired_item_ms, strict=True)
                    )
                measured[kind][c] = median_of(results)
        finally:
            server.stop()
        rates.append(rate(seconds))
    rates += [1000 / item for item in paired_item_ms]
    return measured, statistics.median(rates), margin


def _latest(models_dir: Path, name: str) -> Path:
    """The folder of a model's highest version, as the service's registry finds versions."""
    versions = discover(models_dir)[name]
    return versions[max(versions)]


# (uvicorn workers, ONNX Runtime intra-op threads, decode threads) per process
THREADING = [(1, 1, 1), (1, 2, 2), (1, 0, 2), (2, 1, 1), (2, 2, 1)]


def threading_study(model_dir: Path, seconds: float, runs: int) -> None:
    """Throughput and p99 of the detector on 1080p frames at concurrency 8, per layout."""
    body = Path(tempfile.mkdtemp(prefix="bench-")) / "1920x1080.jpg"
    body.write_bytes(make_frame(FRAMES["1920x1080"]))
    for workers, intra, decoders in THREADING:
        server = servers.polypserve(
            model_dir,
            workers=str(workers),
            intra_op_threads=str(intra),
            decode_threads=str(decoders),
        )
        try:
            result = median_of(load_runs(server.url + "/v1/detect", body, 8, seconds, runs))
        finally:
            server.stop()
        print(
            f"workers {workers} intra-op {intra or 'auto'} decode {decoders}: "
            f"{result.throughput:6.1f}/s p50 {result.p50_ms:6.1f} ms p99 {result.p99_ms:6.1f} ms "
            f"errors {result.errors}",
            flush=True,
        )


def overload_runs(model_dir: Path, workdir: Path, seconds: float) -> list[dict[str, object]]:
    """The detector on 1080p frames at 4x its capacity: as shipped (no latency budget), then
    with ``OVERLOAD_BUDGET_MS``, both against the capacity measured without a budget."""
    body = workdir / "1920x1080.jpg"
    body.write_bytes(make_frame(FRAMES["1920x1080"]))
    rows: list[dict[str, object]] = []
    saturated = None
    for budget in (0, OVERLOAD_BUDGET_MS):
        server = servers.polypserve(model_dir, latency_budget_ms=str(budget))
        try:
            saturated = saturated or saturate(server.url + "/v1/detect", body, 5)
            result = overload(
                server.url + "/v1/detect", body, seconds, server.process.pid, saturated
            )
        finally:
            server.stop()
        rows.append({"overload": result, "latency_budget_ms": budget})
        print(f"overload, latency budget {budget} ms:", json.dumps(result), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--frames", nargs="+", default=list(FRAMES), choices=list(FRAMES))
    parser.add_argument("--concurrency", nargs="+", type=int, default=CONCURRENCY)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--only-overload", action="store_true", help="only the overload runs")
    parser.add_argument(
        "--threading",
        action="store_true",
        help="instead: ORT intra-op threads against uvicorn workers, detector, 1080p, c=8",
    )
    args = parser.parse_args()
    if not wrk_available():
        raise SystemExit("wrk is needed: apt-get install wrk")
    if args.threading:
        threading_study(args.models_dir / "polyp-detector", args.seconds, args.runs)
        return
    rows: list[dict[str, object]] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    for name in [] if args.only_overload else args.models:
        model_dir = args.models_dir / name
        if not model_dir.is_dir():
            print(f"skip {name}: not in {args.models_dir}")
            continue
        task = json.loads((_latest(args.models_dir, name) / "manifest.json").read_text())["task"]
        for frame_name in args.frames:
            body = workdir / f"{frame_name}.jpg"
            body.write_bytes(make_frame(FRAMES[frame_name]))
            measured, ceiling_rate, margin = compare(
                args.models_dir, name, task, body, args.concurrency, args.seconds, args.runs
            )
            for c in args.concurrency:
                ours, theirs = measured["polypserve"][c], measured["naive"][c]
                c1_margin = margin if c == 1 else None
                row = {
                    "model": name,
                    "frame": frame_name,
                    "concurrency": c,
                    "ceiling_per_s": round(ceiling_rate, 1),
                    "ceiling_item_ms": round(1000 / ceiling_rate, 2),
                    "naive": asdict(theirs),
                    "polypserve": asdict(ours),
                    "p50_minus_ceiling_item_ms": None if c1_margin is None else round(c1_margin, 2),
                    "c_over_a": round(ours.throughput / ceiling_rate, 2),
                    "c_over_b": round(ours.throughput / max(theirs.throughput, 1e-9), 2),
                    "p99_c_over_b": round(ours.p99_ms / theirs.p99_ms, 2),
                }
                rows.append(row)
                print(
                    f"{name:17} {frame_name:9} c={c:<3} ceiling {ceiling_rate:6.1f}/s "
                    f"({1000 / ceiling_rate:5.1f} ms) | naive {theirs.throughput:6.1f}/s "
                    f"p50 {theirs.p50_ms:6.1f} p99 {theirs.p99_ms:7.1f} | polypserve "
                    f"{ours.throughput:6.1f}/s p50 {ours.p50_ms:6.1f} p99 {ours.p99_ms:7.1f} "
                    f"err {ours.errors} | c/a {row['c_over_a']:.2f} c/b {row['c_over_b']:.2f} "
                    f"p99 c/b {row['p99_c_over_b']:.2f}"
                    + ("" if c1_margin is None else f" | p50 - ceiling {c1_margin:+.2f} ms"),
                    flush=True,
                )
    if "polyp-detector" in args.models and (args.models_dir / "polyp-detector").is_dir():
        rows.extend(overload_runs(args.models_dir / "polyp-detector", workdir, args.seconds * 2))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
