"""The GPU check, run here on CPU: it must name the provider really in use and fail
``--require-gpu`` rather than report CPU figures as if they were the GPU's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def _gpu_check(tiny_repo: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.perf.gpu_check",
            "--models-dir",
            str(tiny_repo),
            "--repeats",
            "2",
            *flags,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_prints_the_provider_in_use_at_batch_1_8_and_32(tiny_repo: Path) -> None:
    result = _gpu_check(tiny_repo)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "median" in line]
    ready = {line.split()[0] for line in lines}
    assert {"tiny-classifier", "tiny-detector"} <= ready
    for name in ready:
        batches = [line.split("batch")[1].split(":")[0].strip() for line in lines if name in line]
        assert batches == ["1", "8", "32"], name  # CPU: no IO-binding rows
    assert all("CPUExecutionProvider" in line for line in lines)


def test_require_gpu_fails_on_a_cpu_machine(tiny_repo: Path) -> None:
    result = _gpu_check(tiny_repo, "--require-gpu")
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("CUDA: ") and first != "CUDA: available"  # says why not
