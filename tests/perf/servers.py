"""Start the servers a benchmark compares: polypserve and the naive baseline, each a uvicorn
process on a free port, with one model."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT, free_port


class Server:
    def __init__(self, command: list[str], env: dict[str, str], ready_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            [part.replace("{port}", str(self.port)) for part in command],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode(errors="replace"))
            try:
                if httpx.get(self.url + ready_path, timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError(command)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def polypserve(model_dir: Path, **settings: str) -> Server:
    """polypserve serving only ``model_dir`` (a ``<name>/<version>`` folder's parent)."""
    repo = Path(tempfile.mkdtemp(prefix="bench-models-"))
    (repo / model_dir.name).symlink_to(model_dir.resolve())
    env = {
        "POLYPSERVE_MODELS_DIR": str(repo),
        "POLYPSERVE_LOG_LEVEL": "warning",
        "POLYPSERVE_SHUTDOWN_GRACE_S": "0",
        **{f"POLYPSERVE_{k.upper()}": v for k, v in settings.items()},
    }
    command = [sys.executable, "-m", "service", "serve", "--port", "{port}"]
    return Server(command, env, "/v2/health/ready")


def naive(version_dir: Path) -> Server:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.perf.naive_service:app",
        "--port",
        "{port}",
        "--log-level",
        "warning",
    ]
    return Server(command, {"NAIVE_MODEL_DIR": str(version_dir)}, "/docs")


def polypserve_repository(models_dir: Path, **settings: str) -> Server:
    """polypserve with its default settings on a whole model repository."""
    env = {
        "POLYPSERVE_MODELS_DIR": str(models_dir),
        "POLYPSERVE_LOG_LEVEL": "warning",
        **{f"POLYPSERVE_{k.upper()}": v for k, v in settings.items()},
    }
    command = [sys.executable, "-m", "service", "serve", "--port", "{port}"]
    return Server(command, env, "/v2/health/ready")
