"""Shared fixtures: a repository of tiny models, and HTTP clients for the in-process app and a
live uvicorn process (contract tests run against both)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from tests.model_factory import build_repository

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("POLYPSERVE_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("models"))


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(
    url: str,
    running: Callable[[], bool],
    output: Callable[[], str],
    timeout: float,
    poll_s: float = 0.1,
) -> None:
    """Poll ``url``'s readiness until 200; fail at once, with ``output()``, if the server is no
    longer ``running``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running():
            raise RuntimeError(f"the server exited:\n{output()[-5000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(poll_s)
    raise TimeoutError(f"not ready in {timeout} s:\n{output()[-5000:]}")


class LiveServer:
    """``polypserve serve`` in a subprocess on a free port, waited on until ready."""

    def __init__(self, models_dir: Path, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        # Video jobs of their own: servers of one session never see each other's.
        self.jobs_dir = Path(tempfile.mkdtemp(prefix="polypserve-jobs-"))
        environment = {
            **os.environ,
            "POLYPSERVE_INTRA_OP_THREADS": "1",
            "POLYPSERVE_SHUTDOWN_GRACE_S": "0",
            "POLYPSERVE_LOG_FORMAT": "text",
            "POLYPSERVE_VIDEO_JOBS_DIR": str(self.jobs_dir),
            **env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "serve",
                "--port",
                str(self.port),
                "--models-dir",
                str(models_dir),
            ],
            env=environment,
            cwd=REPO_ROOT,
            # A file, not a pipe: an unread pipe fills up and blocks the server's logging.
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_ready(self, timeout: float = 60.0) -> None:
        wait_until_ready(self.url, lambda: self.process.poll() is None, self.output, timeout)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.jobs_dir, ignore_errors=True)
        return self.output()


@pytest.fixture(scope="session")
def live_server(tiny_repo: Path) -> Iterator[LiveServer]:
    server = LiveServer(tiny_repo)
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def app_client(
    settings: Settings, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in-process, its lifespan entered (models loaded)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture(params=["asgi", "uvicorn"])
async def client(
    request: pytest.FixtureRequest, tiny_repo: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The same contract tests, in-process (lifespan entered) and over a real socket."""
    if request.param == "asgi":
        async with app_client(Settings(models_dir=tiny_repo, intra_op_threads=1)) as http:
            yield http
    else:
        server: LiveServer = request.getfixturevalue("live_server")
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
            yield http
