"""``polypserve analyze INPUT``: the command line over ``service.video``.

Every expected failure (unreadable or over-limit input, no model, an unreachable service, an
unwritable output) ends with one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from service.config import Settings
from service.errors import InvalidParameterError, PolypServeError

if TYPE_CHECKING:  # PyAV, numpy and the model code load only when the command runs
    from service.stream.params import StreamParams
    from service.video.pipeline import Analyzer
    from service.video.source import VideoLimits


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="a video file, or a folder of images")
    parser.add_argument("--out", type=Path, help="write the annotated video here (H.264 MP4)")
    parser.add_argument("--report", type=Path, help="write the JSON report here (default: stdout)")
    parser.add_argument("--thumbnails", type=Path, help="write each track's best view here (JPEG)")
    parser.add_argument(
        "--frames", type=Path,
        help="write each frame's result here, one JSON line a frame, as /v1/stream sends it",
    )  # fmt: skip
    parser.add_argument(
        "--fps", type=float, help="frame rate of a folder of images (default 30), or of a video "
        "whose file says a wrong one",
    )  # fmt: skip
    parser.add_argument("--model", help="detection model (default: the stream's default)")
    parser.add_argument("--version", type=int, help="model version (default: the highest ready)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a /v1/stream query parameter, e.g. off_threshold=0.25 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--url", help="analyse with a running service (its /v1/stream) instead")
    parser.add_argument(
        "--key-env", default="POLYPSERVE_API_KEY",
        help="environment variable holding the service's API key (--url)",
    )  # fmt: skip
    parser.add_argument("--models-dir", type=Path, help="default: POLYPSERVE_MODELS_DIR or models")


def run(args: argparse.Namespace) -> int:
    # Errors only: the report names the provider in use, and a warning line would break the
    # progress bar.
    logging.basicConfig(level=logging.ERROR, format="polypserve analyze: %(message)s")
    try:
        report = _analyze(args)
    except PolypServeError as exc:
        print(f"polypserve analyze: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # an output that cannot be written
        print(f"polypserve analyze: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:  # a POLYPSERVE_* setting out of its range
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        print(f"polypserve analyze: setting {where}: {error['msg']}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("polypserve analyze: interrupted", file=sys.stderr)
        return 130
    if args.report is None:
        print(json.dumps(report, indent=2))
    speed, totals = report["processing"], report["totals"]
    written = [str(p) for p in (args.out, args.report, args.thumbnails, args.frames) if p]
    print(
        f"{totals['frames']} frames in {speed['seconds']:.1f} s ({speed['fps']:.1f} fps, "
        f"{speed['realtime_factor']:.2f}x real time), {totals['tracks']} tracks"
        + (f"; wrote {', '.join(written)}" if written else ""),
        file=sys.stderr,
    )
    return 0


def _analyze(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    from service.video.pipeline import run_analysis
    from service.video.source import VideoLimits, open_source

    settings = Settings(**({"models_dir": args.models_dir} if args.models_dir else {}))
    params = _params(args)
    if args.out is not None and args.out.resolve() == args.input.resolve():
        raise InvalidParameterError("--out would overwrite the input")
    limits = VideoLimits(settings.max_video_pixels, settings.max_video_duration_s)
    source = open_source(args.input, limits, args.fps)
    try:
        analyzer = _analyzer(args, settings, params, limits)
        frames = args.frames.open("w") if args.frames is not None else None
        try:
            bar = tqdm(total=source.info.frames, unit="frame", desc=args.input.name, disable=None)

            def on_frame(result: dict[str, Any]) -> None:
                bar.update()
                if frames is not None:
                    frames.write(json.dumps(result) + "\n")

            with bar:
                report = run_analysis(source, analyzer, args.out, args.thumbnails, on_frame)
        finally:
            analyzer.close()
            if frames is not None:
                frames.close()
    finally:
        source.close()
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _params(args: argparse.Namespace) -> StreamParams:
    from service.stream.params import StreamParams

    query: dict[str, str] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidParameterError(f"--param {item}: expected NAME=VALUE")
        query[name.strip()] = value.strip()
    query.update({k: str(v) for k, v in (("model", args.model), ("version", args.version)) if v})
    try:
        return StreamParams.model_validate(query)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "parameters"
        raise InvalidParameterError(f"--param {where}: {error['msg']}") from None


def _analyzer(
    args: argparse.Namespace, settings: Settings, params: StreamParams, limits: VideoLimits
) -> Analyzer:
    if args.url:
        from service.video.remote import RemoteAnalyzer

        return RemoteAnalyzer(args.url, params, os.environ.get(args.key_env))
    from service.video.detector import LocalAnalyzer, load_detector

    model = load_detector(settings, params.model, params.version)
    try:
        return LocalAnalyzer(model, params, limits.max_pixels)
    except ValidationError as exc:  # smoothing that does not hold together
        raise InvalidParameterError(f"--param: {exc.errors()[0]['msg']}") from None
