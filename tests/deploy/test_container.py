"""The images for real, built with ``docker/build-local.sh`` (podman on a Debian stand-in base):
the CPU container serves the shipped models to the contract tests, runs as uid 10001, passes its
own HEALTHCHECK, loses no request to ``podman stop`` and holds no torch, training code or data;
the GPU container refuses to start where there is no CUDA."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port, wait_until_ready
from tests.contract.test_shutdown import SteadyLoad
from tests.contract.test_videos import MP4, clip

BUILD = REPO_ROOT / "docker" / "build-local.sh"
# crun and podman's default ulimits are refused on this project's machines; these are accepted.
RUN_OPTIONS = ["--network=host", "--ulimit", "nofile=10000:10000", "--ulimit", "nproc=4096:4096"]
# The image less its models: 379 MB before PyAV, whose wheel's bundled FFmpeg libraries add
# about 110 MB, 451 MB since. The models folder is copied whole and grows with each version.
MAX_CPU_IMAGE_BYTES_LESS_MODELS = 460 * 1000**2
NOT_IN_THE_IMAGE = ["torch", "onnxruntime-gpu"] + [
    re.split(r"[=<>\[ ]", requirement)[0]
    for requirement in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["train"]
]


def _podman() -> list[str]:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if not shutil.which(tool)]
    if not missing and os.geteuid() != 0:
        missing = ["root (debootstrap, podman's chroot isolation)"]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"missing: {missing}; .ci/run installs podman, runc and debootstrap")
        pytest.skip(f"missing: {missing}")
    return ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]


def _run(*command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _build(target: str) -> str:
    podman = _podman()
    tag = f"polypserve:{target}"
    result = subprocess.run(
        [str(BUILD), target, tag], capture_output=True, text=True, timeout=900, cwd=REPO_ROOT
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert _run(*podman, "image", "exists", tag).returncode == 0
    return tag


@pytest.fixture(scope="module")
def cpu_image() -> str:
    return _build("cpu")


@pytest.fixture(scope="module")
def gpu_image() -> str:
    return _build("gpu")


class Container:
    """A detached container on the host's network, on a free port."""

    def __init__(self, image: str, *options: str, **env: str) -> None:
        self.podman = _podman()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        variables = [f"--env={k}={v}" for k, v in {"POLYPSERVE_PORT": self.port, **env}.items()]
        result = _run(*self.podman, "run", "-d", *RUN_OPTIONS, *options, *variables, image)
        assert result.returncode == 0, result.stderr
        self.id = result.stdout.strip().splitlines()[-1]

    def podman_command(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _run(*self.podman, *args, timeout=timeout)

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return self.podman_command("exec", self.id, *command)

    def state(self) -> dict[str, object]:
        result = self.podman_command("inspect", "--format", "{{json .State}}", self.id)
        return dict(json.loads(result.stdout))

    def logs(self) -> str:
        result = self.podman_command("logs", self.id)
        return result.stdout + result.stderr

    def wait_until_ready(self, timeout: float = 180) -> None:
        wait_until_ready(self.url, lambda: bool(self.state()["Running"]), self.logs, timeout, 0.5)

    def remove(self) -> None:
        self.podman_command("rm", "--force", "--time", "0", self.id)


@pytest.fixture(scope="module")
def cpu_container(cpu_image: str) -> Iterator[Container]:
    container = Container(cpu_image)
    try:
        container.wait_until_ready()
        yield container
    finally:
        container.remove()


def test_contract_tests_on_the_shipped_models_pass_against_the_container(
    cpu_container: Container,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/contract/test_shipped.py",
            "-k",
            "remote",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env={**os.environ, "POLYPSERVE_TEST_URL": cpu_container.url},
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert re.search(r"\b[1-9]\d* passed", result.stdout), result.stdout[-2000:]


def test_the_service_runs_as_uid_10001(cpu_container: Container) -> None:
    status = cpu_container.exec("cat", "/proc/1/status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status.stdout, re.M), status.stdout
    assert re.search(r"^Gid:\s+10001\s+10001\s+10001\s+10001$", status.stdout, re.M), status.stdout
    assert "polypserve" in cpu_container.exec("cat", "/proc/1/cmdline").stdout


def test_its_healthcheck_command_succeeds_inside_it(cpu_container: Container) -> None:
    result = cpu_container.podman_command(
        "inspect", "--format", "{{json .Config.Healthcheck.Test}}", cpu_container.id
    )
    test = json.loads(result.stdout)
    assert test[0] == "CMD" and "/v2/health/ready" in test[-1], test
    check = cpu_container.exec(*test[1:])
    assert check.returncode == 0, check.stdout + check.stderr


# Walks the filesystem for what must not be there: training code, data sets, checkpoints.
INVENTORY = r"""
import importlib.metadata, importlib.util, json, os
found = []
for top, dirs, files in os.walk("/"):
    if top in ("/proc", "/sys", "/dev"):
        dirs[:] = []
        continue
    found += [os.path.join(top, f) for f in files]
print(json.dumps({
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
    "training": importlib.util.find_spec("training") is not None,
    "files": found,
}))
"""
DATA_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".tif",
    ".tiff",
    ".mp4",
    ".avi",
    ".csv",
    ".parquet",
    ".npy",
    ".npz",
    ".pt",
    ".pth",
    ".ckpt",
    ".pkl",
)


def test_no_torch_training_code_or_data_set_is_in_the_image(cpu_container: Container) -> None:
    result = cpu_container.exec("python", "-c", INVENTORY)
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    assert "onnxruntime" in inventory["distributions"]
    assert not set(NOT_IN_THE_IMAGE) & set(inventory["distributions"])
    assert not inventory["training"]
    files = inventory["files"]
    assert not [f for f in files if "kvasir" in f.lower() or "/training/" in f]
    # Outside the system's and the libraries' own files, only the models and what the service
    # reads: no picture, series or checkpoint came along.
    ours = [f for f in files if not f.startswith(("/usr/", "/opt/venv/lib/", "/etc/", "/var/"))]
    assert not [f for f in ours if f.lower().endswith(DATA_SUFFIXES)]
    models = {os.path.basename(f) for f in ours if f.startswith("/models/")}
    assert "model.onnx" in models and models <= {
        "README.md",
        "manifest.json",
        "model.onnx",
        "config.json",
    }, models


def test_the_cpu_image_is_small(cpu_image: str) -> None:
    podman = _podman()
    size = int(_run(*podman, "image", "inspect", "--format", "{{.Size}}", cpu_image).stdout)
    shipped = (REPO_ROOT / "models").rglob("*")
    # what .dockerignore lets into the image: not the training curves
    models = sum(f.stat().st_size for f in shipped if f.is_file() and f.suffix != ".png")
    assert size - models <= MAX_CPU_IMAGE_BYTES_LESS_MODELS, f"{size / 1000**2:.0f} MB in all"


def test_podman_stop_during_steady_load_loses_no_request(cpu_image: str) -> None:
    container = Container(cpu_image, POLYPSERVE_SHUTDOWN_GRACE_S="3")
    loads: list[SteadyLoad] = []
    try:
        container.wait_until_ready()
        loads = [SteadyLoad(container.url) for _ in range(3)]
        for load in loads:
            load.start()
        while sum(load.ok for load in loads) < 10:
            time.sleep(0.05)
        stop = subprocess.Popen(
            [*container.podman, "stop", "--time", "30", container.id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        signalled = time.monotonic()
        # SIGTERM turns readiness 503 at once while requests are still served.
        while httpx.get(f"{container.url}/v2/health/ready", timeout=5).status_code != 503:
            assert time.monotonic() - signalled < 5.0
        served_before = sum(load.ok for load in loads)
        time.sleep(1.0)  # inside the grace period: a balancer would now have drained it
        assert sum(load.ok for load in loads) > served_before
        for load in loads:
            load.stopping.set()
        for load in loads:
            load.join(timeout=30)
        assert stop.wait(timeout=60) == 0, stop.stderr.read() if stop.stderr else ""
        assert time.monotonic() - signalled < 25, "podman stop had to SIGKILL it"
        assert container.state()["ExitCode"] == 0, container.logs()[-3000:]
        assert [failure for load in loads for failure in load.failed] == []
    finally:
        for load in loads:
            load.stopping.set()
        container.remove()


def test_a_video_job_is_kept_in_a_named_volume_across_containers(
    cpu_image: str, tmp_path: Path
) -> None:
    """As docker/compose.yaml mounts it: the jobs folder starts writable for uid 10001 and a
    job done in one container is there, done, in the next."""
    podman = _podman()
    volume = f"polypserve-test-jobs-{os.getpid()}"
    assert _run(*podman, "volume", "create", volume).returncode == 0
    mount = f"--volume={volume}:/var/lib/polypserve/jobs"
    try:
        first = Container(cpu_image, mount)
        try:
            first.wait_until_ready()
            video = clip(tmp_path / "clip.mp4").read_bytes()
            created = httpx.post(f"{first.url}/v1/videos", content=video, headers=MP4, timeout=30)
            assert created.status_code == 202, created.text
            job_url = first.url + created.headers["location"]
            deadline = time.monotonic() + 60
            while (job := httpx.get(job_url).json())["state"] not in ("done", "failed"):
                assert time.monotonic() < deadline, job
                time.sleep(0.2)
            assert job["state"] == "done", job
        finally:
            first.remove()
        second = Container(cpu_image, mount)
        try:
            second.wait_until_ready()
            kept = httpx.get(second.url + created.headers["location"]).json()
            assert kept["state"] == "done" and kept["id"] == job["id"]
            report = httpx.get(second.url + kept["report_url"])
            assert report.status_code == 200 and report.json()["totals"]["frames"] == 12
        finally:
            second.remove()
    finally:
        _run(*podman, "volume", "rm", "--force", volume)


def test_the_gpu_container_refuses_to_start_without_cuda(gpu_image: str) -> None:
    container = Container(gpu_image)
    try:
        result = container.podman_command("wait", container.id, timeout=120)
        assert result.returncode == 0, result.stderr
        assert int(result.stdout.strip()) != 0
        logs = container.logs()
        assert "POLYPSERVE_REQUIRE_GPU is set but CUDA is unavailable" in logs, logs[-3000:]
    finally:
        container.remove()
