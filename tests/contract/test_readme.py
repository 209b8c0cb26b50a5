"""The README's curl examples, run as a new user would, against a live uvicorn serving the
shipped models: every command must answer as documented (2xx, JSON unless it asks for PNG)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DATA_ROOT, REPO_ROOT
from tests.contract.test_shipped import MODELS, shipped_server  # noqa: F401 - a fixture

# Wraps curl: prints "CURL <status>" after each command and fails the script on an error.
CURL_WRAPPER = r"""
curl() {
  local out code
  out=$(command curl -sS -w '\n%{http_code}' "$@") || exit 1
  code=${out##*$'\n'}
  echo "$out"
  echo "CURL $code"
  [ "$code" -lt 400 ] || exit 1
}
"""


def _bash_blocks(text: str) -> list[str]:
    return [block for block in re.findall(r"```bash\n(.*?)```", text, re.S) if "curl" in block]


def test_every_curl_example_answers(shipped_server: object, tmp_path: Path) -> None:  # noqa: F811
    expected = {"polyp-detector", "polyp-segmenter", "polyp-classifier", "series-forecaster"}
    missing = expected - {p.name for p in MODELS.iterdir()}
    if missing:
        pytest.skip(f"the README's examples use models not shipped yet: {sorted(missing)}")
    if not DATA_ROOT.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"no data at {DATA_ROOT}")
        pytest.skip(f"no data at {DATA_ROOT}")
    url = shipped_server.url  # type: ignore[attr-defined]
    blocks = _bash_blocks((REPO_ROOT / "README.md").read_text())
    assert blocks, "the README has no curl examples"
    for block in blocks:
        script = block.replace("http://127.0.0.1:8000", url).replace(
            "../shared/data", str(DATA_ROOT)
        )
        result = subprocess.run(
            ["bash", "-c", CURL_WRAPPER + script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{script}\n---\n{result.stdout[-2000:]}{result.stderr}"
        statuses = re.findall(r"^CURL (\d+)$", result.stdout, re.M)
        assert statuses and all(s.startswith("2") for s in statuses), result.stdout[-2000:]
        assert script.count("curl ") == len(statuses)


def test_the_readme_detection_sample_is_what_the_shipped_detector_returns(
    shipped_server: object,  # noqa: F811
) -> None:
    """The commented response under the README's detection example: the default version's
    model, image size and detections (timings vary and are not compared)."""
    import httpx

    text = (REPO_ROOT / "README.md").read_text()
    image = re.search(r"^IMG=(\S+)$", text, re.M)
    sample = re.search(r"^# (\{\"model\".*?\}\})$\n(?=# \()", text, re.M | re.S)
    assert image and sample, "the README's detection example or its sample output is missing"
    documented = json.loads(re.sub(r"^#\s*", "", sample.group(1), flags=re.M))
    path = Path(image.group(1).replace("../shared/data", str(DATA_ROOT)))
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"no data at {DATA_ROOT}")
        pytest.skip(f"no data at {DATA_ROOT}")
    query = re.search(r"(/v1/detect\?[^']+)'", text)
    assert query
    url = shipped_server.url  # type: ignore[attr-defined]
    got = httpx.post(
        url + query.group(1),
        content=path.read_bytes(),
        headers={"content-type": "image/jpeg"},
        timeout=60,
    ).json()
    assert got["model"] == documented["model"]
    (result,) = got["results"]
    (expected,) = documented["results"]
    assert result["image"] == expected["image"]
    assert len(result["detections"]) == len(expected["detections"])
    for found, shown in zip(result["detections"], expected["detections"], strict=True):
        assert found["label"] == shown["label"]
        assert found["score"] == pytest.approx(shown["score"], abs=1e-3)
        assert found["box"] == pytest.approx(shown["box"], abs=0.5)
