"""The ``polypserve`` command: ``serve`` the models; ``models`` lists and validates a repository;
``analyze`` runs the detector and the stream's tracker over a recorded video."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from service.config import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="polypserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the model repository over HTTP")
    serve.add_argument("--host", help="default: POLYPSERVE_HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: POLYPSERVE_PORT or 8000")
    serve.add_argument("--models-dir", type=Path, help="default: POLYPSERVE_MODELS_DIR or models")
    serve.add_argument("--workers", type=int, help="processes; each loads its own model copies")

    models = commands.add_parser("models", help="list and validate a model repository")
    models.add_argument("--models-dir", type=Path, help="default: POLYPSERVE_MODELS_DIR or models")
    models.add_argument("--json", action="store_true", help="print the catalogue as JSON")

    repository = commands.add_parser("repository", help="model control of a running service")
    repository.add_argument("action", choices=["index", "load", "unload"])
    repository.add_argument("name", nargs="?", help="model name (load, unload)")
    repository.add_argument("--url", default="http://127.0.0.1:8000", help="service address")
    repository.add_argument(
        "--key-env",
        default="POLYPSERVE_ADMIN_KEY",
        help="environment variable holding the key to present (load and unload need an admin "
        "key); default: POLYPSERVE_ADMIN_KEY",
    )

    analyze = commands.add_parser(
        "analyze",
        help="detect and track polyps in a recorded video; write an annotated copy and a report",
    )
    from service.video import command as video_command

    video_command.add_arguments(analyze)

    args = parser.parse_args(argv)
    if args.command == "analyze":
        return video_command.run(args)
    if args.command == "repository":
        return _control(args.action, args.name, args.url, os.environ.get(args.key_env))
    flags = {
        field: getattr(args, field)
        for field in ("host", "port", "models_dir", "workers")
        if getattr(args, field, None) is not None
    }
    if args.command == "serve":
        # uvicorn's factory (and each worker process) reads the environment, so flags go there.
        for field, value in flags.items():
            os.environ[f"POLYPSERVE_{field.upper()}"] = str(value)
        return _serve(Settings())
    return _check_models(Settings(**flags), as_json=args.json)


def _serve(settings: Settings) -> int:
    if settings.require_gpu:
        # Without CUDA no model can turn ready: exit at once, with the reason, rather than
        # serve 503s (a container restarts and its logs say why; the GPU image sets this).
        from service.repository.runtime import cuda_unavailable_reason

        reason = cuda_unavailable_reason()
        if reason is not None:
            print(
                f"POLYPSERVE_REQUIRE_GPU is set but CUDA is unavailable: {reason}", file=sys.stderr
            )
            return 1

    import uvicorn

    from service.logs import uvicorn_log_config
    from service.server.head_limit import bounded_protocol
    from service.server.lifecycle import DrainingServer

    config = uvicorn.Config(
        "service.app:app_from_environment",
        factory=True,
        http=bounded_protocol(settings.max_header_bytes),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings),
        timeout_graceful_shutdown=int(settings.request_timeout_ms / 1000) + 5,
        # A frame message may be up to max_frame_bytes; the stream answers larger ones itself.
        ws_max_size=settings.max_frame_bytes + 1024 * 1024,
        # Frames are JPEG/PNG, which deflate cannot shrink: compressing them cost the client and
        # the server's event loop more CPU than decoding them (flat out, the sender's whole core).
        ws_per_message_deflate=False,
    )
    if settings.workers > 1:
        # Several processes: uvicorn's supervisor and its own shutdown, without the drain.
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return 0
    DrainingServer(config, settings.shutdown_grace_s).run()
    return 0


def _control(action: str, name: str | None, url: str, key: str | None) -> int:
    """Call Triton's model repository API of a running service (the same routes tritonclient
    uses) and print its answer."""
    import httpx

    if action != "index" and not name:
        print(f"'{action}' needs a model name", file=sys.stderr)
        return 2
    path = "/v2/repository/index" if action == "index" else f"/v2/repository/models/{name}/{action}"
    try:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = httpx.post(url.rstrip("/") + path, headers=headers, timeout=120.0)
    except httpx.TransportError as exc:
        print(f"cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(response.json().get("error", response.text), file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2))
    return 0


def _check_models(settings: Settings, *, as_json: bool) -> int:
    from service.api.models import describe
    from service.repository.registry import Registry

    registry = Registry(settings.model_copy(update={"warmup": True}))
    registry.load_all()
    catalogue = [describe(registry, name) for name in sorted(registry.models)]
    if not catalogue:
        print(f"no models found in {settings.models_dir}", file=sys.stderr)
        return 1
    failed = False
    if as_json:
        print(json.dumps(catalogue, indent=2))
    for entry in catalogue:
        for version in entry["versions"]:
            failed |= version["state"] != "ready"
            if not as_json:
                providers = ",".join(version["providers"]) or "-"
                reason = f"  {version['reason']}" if version["reason"] else ""
                print(
                    f"{entry['name']:<24} v{version['version']:<3} {entry['task'] or '?':<15} "
                    f"{version['state']:<7} {providers}{reason}"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
