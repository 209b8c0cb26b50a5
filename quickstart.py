#!/usr/bin/env python3
"""The README's two commands: ``python3 quickstart.py serve`` and ``python3 quickstart.py test``.

Each makes (or reuses) a virtual environment in ``.venv`` with the pinned packages, then starts
the service on the shipped models, or runs the whole check: ruff, mypy and the test suite.
Extra arguments go to ``polypserve serve`` or to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"


def ensure_environment(extras: str) -> None:
    """Create ``.venv`` and install the project with ``extras``; skipped when up to date."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before any venv exists
        sys.exit("polypserve needs Python 3.11 or newer")
    stamp = VENV / f".installed-{extras or 'base'}"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        try:
            venv.EnvBuilder(with_pip=True).create(VENV)
        except subprocess.CalledProcessError:
            sys.exit("venv could not install pip; on Debian/Ubuntu: apt-get install python3-venv")
    target = f".[{extras}]" if extras else "."
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run([*pip, "--upgrade", "pip"])
    run([*pip, "-e", target])
    stamp.write_text(wanted)


def run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT)
    if result.returncode != 0:
        sys.exit(result.returncode)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"serve", "test"}:
        sys.exit(__doc__)
    command, extra = sys.argv[1], sys.argv[2:]
    if command == "serve":
        ensure_environment("")
        os.execv(BIN / "polypserve", [str(BIN / "polypserve"), "serve", *extra])
    ensure_environment("dev,train")
    run([str(BIN / "ruff"), "check", "."])
    run([str(BIN / "ruff"), "format", "--check", "."])
    run([str(BIN / "mypy")])
    run([str(PYTHON), "-m", "pytest", *extra])


if __name__ == "__main__":
    main()
