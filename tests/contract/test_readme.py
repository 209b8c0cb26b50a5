"""The README's examples, run as a new user would, against a live uvicorn serving the shipped
models: every curl command answers 2xx, every Python example (httpx, websockets, tritonclient)
runs, and where the README shows what an example prints, the live answer has the same fields and
shapes and, where the models are deterministic, the same values.

A shown output is the fenced ``json`` block right after the example: the JSON values the
example prints, in order. ``"…"`` stands for anything (a long list, or timings); numbers match
at the precision shown (timings by name only)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATA_ROOT, REPO_ROOT
from tests.contract.test_shipped import MODELS, shipped_server  # noqa: F401 - a fixture

ANY = "…"
ADDRESS = "127.0.0.1:8000"

# Wraps curl: prints the body, then "CURL <status>" on a line of its own, and fails the script
# on an error.
CURL_WRAPPER = r"""
curl() {
  local out code
  out=$(command curl -sS -w '\n%{http_code}' "$@") || exit 1
  code=${out##*$'\n'}
  echo "${out%$'\n'*}"
  echo "CURL $code"
  [ "$code" -lt 400 ] || exit 1
}
"""


@dataclass
class Example:
    language: str  # "bash" or "python"
    code: str
    shown: list[Any] | None  # the values the README says it prints, if it shows them


def readme_examples(text: str) -> list[Example]:
    """The bash blocks that call curl and every python block, each with the json block that
    follows it directly (nothing but blank lines between), if any."""
    blocks = [(m.group(1), m.group(2), m.start(), m.end())
              for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S)]  # fmt: skip
    examples = []
    for index, (language, code, _, end) in enumerate(blocks):
        if not (language == "python" or (language == "bash" and "curl " in code)):
            continue
        shown = None
        if index + 1 < len(blocks):
            next_language, next_code, next_start, _ = blocks[index + 1]
            if next_language == "json" and not text[end:next_start].strip():
                shown = json_values(next_code)
        examples.append(Example(language, code, shown))
    return examples


def json_values(text: str) -> list[Any]:
    """The JSON values in ``text``, one after another (pretty-printed or one per line)."""
    decoder, values, position = json.JSONDecoder(), [], 0
    while (position := _skip_space(text, position)) < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
    return values


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _decimals(number: float) -> int:
    text = repr(float(number))
    return len(text.split(".")[1]) if "." in text and "e" not in text else 6


def assert_matches(shown: Any, got: Any, where: str = "output") -> None:
    """``got`` (a live answer) has what ``shown`` (the README's sample) shows."""
    if shown == ANY:
        return
    if isinstance(shown, dict):
        assert isinstance(got, dict), f"{where}: {got!r} is not an object"
        assert sorted(got) == sorted(shown), f"{where}: fields {sorted(got)}, shown {sorted(shown)}"
        for key, value in shown.items():
            if key == "timing_ms" and isinstance(value, dict):
                assert all(isinstance(v, int | float) and v >= 0 for v in got[key].values())
            else:
                assert_matches(value, got[key], f"{where}.{key}")
    elif isinstance(shown, list):
        assert isinstance(got, list), f"{where}: {got!r} is not a list"
        assert len(got) == len(shown), f"{where}: {len(got)} items, shown {len(shown)}"
        for index, (value, found) in enumerate(zip(shown, got, strict=True)):
            assert_matches(value, found, f"{where}[{index}]")
    elif isinstance(shown, bool) or not isinstance(shown, int | float):
        assert got == shown, f"{where}: {got!r}, shown {shown!r}"
    elif isinstance(shown, int) and isinstance(got, int) and not isinstance(got, bool):
        assert got == shown, f"{where}: {got}, shown {shown}"
    else:
        assert isinstance(got, int | float) and not isinstance(got, bool), f"{where}: {got!r}"
        # Equal at the coarser of the two precisions, with room for another CPU's rounding.
        tolerance = 0.5 * 10.0 ** -min(_decimals(shown), _decimals(got)) + 1e-3 * abs(shown)
        assert abs(got - shown) <= tolerance, f"{where}: {got}, shown {shown}"


def _require_models_and_data() -> None:
    expected = {"polyp-detector", "polyp-segmenter", "polyp-classifier", "series-forecaster"}
    missing = expected - {p.name for p in MODELS.iterdir()}
    if missing:
        pytest.skip(f"the README's examples use models not shipped yet: {sorted(missing)}")
    if not DATA_ROOT.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"no data at {DATA_ROOT}")
        pytest.skip(f"no data at {DATA_ROOT}")


def _for_this_server(code: str, url: str) -> str:
    address = url.removeprefix("http://")
    return code.replace(ADDRESS, address).replace("../shared/data", str(DATA_ROOT))


def _run(example: Example, url: str, cwd: Path) -> list[Any]:
    """Runs the example; returns the JSON values it printed."""
    code = _for_this_server(example.code, url)
    if example.language == "python":
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-c", CURL_WRAPPER + code]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{code}\n---\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    output = result.stdout
    if example.language == "bash":
        statuses = re.findall(r"^CURL (\d+)$", output, re.M)
        assert statuses and all(s.startswith("2") for s in statuses), output[-2000:]
        assert code.count("curl ") == len(statuses)
        output = re.sub(r"^CURL \d+$", "", output, flags=re.M)
    return json_values(output) if example.shown is not None else []


def test_the_readme_shows_outputs_for_every_kind_of_example() -> None:
    examples = readme_examples((REPO_ROOT / "README.md").read_text())
    assert sum(e.language == "bash" for e in examples) >= 5, "the curl examples are missing"
    shown = [e for e in examples if e.shown is not None]
    python = [e.code for e in shown if e.language == "python"]
    for client in ("import httpx", "websockets", "tritonclient"):
        assert any(client in code for code in python), f"no {client} example with its output"
    for route in ("/v1/detect", "/v1/classify", "/v1/segment", "/v1/forecast"):
        assert any(e.language == "bash" and route in e.code for e in shown), route


def test_examples_write_files_outside_the_repository() -> None:
    for example in readme_examples((REPO_ROOT / "README.md").read_text()):
        targets = re.findall(r"(?:^|\s)-o\s+(\S+)", example.code)
        targets += re.findall(r"open\(\s*\"([^\"]+)\",\s*\"[wa]", example.code)
        for target in targets:
            assert target.startswith("/tmp/"), f"{target} is written inside the working folder"


def test_every_readme_example_answers_as_shown(
    shipped_server: object,  # noqa: F811
    tmp_path: Path,
) -> None:
    _require_models_and_data()
    url = shipped_server.url  # type: ignore[attr-defined]
    examples = readme_examples((REPO_ROOT / "README.md").read_text())
    for number, example in enumerate(examples):
        printed = _run(example, url, tmp_path)
        if example.shown is None:
            continue
        assert len(printed) == len(example.shown), f"{example.code}\n---\n{printed}"
        for index, (shown, got) in enumerate(zip(example.shown, printed, strict=True)):
            assert_matches(shown, got, f"example {number} ({example.language}), value {index}")


@pytest.mark.parametrize(
    ("shown", "got", "matches"),
    [
        ({"a": 1, "timing_ms": {"total": 1.0}}, {"a": 1, "timing_ms": {"total": 9.5}}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),  # a field the README does not show
        ([1, 2], [1, 2, 3], False),  # another number of detections
        ({"score": 0.97441}, {"score": 0.9744101166725159}, True),
        ({"box": [84.44, 1.15]}, {"box": [84.4, 1.1]}, True),  # shown at another precision
        ({"box": [84.44]}, {"box": [85.44]}, False),
        ({"counts": ANY}, {"counts": [1, 2, 3]}, True),
        ({"version": 2}, {"version": 1}, False),
        ({"name": "polyp-detector"}, {"name": "polyp-classifier"}, False),
    ],
)
def test_outputs_match_as_documented(shown: Any, got: Any, matches: bool) -> None:
    if matches:
        assert_matches(shown, got)
    else:
        with pytest.raises(AssertionError):
            assert_matches(shown, got)
