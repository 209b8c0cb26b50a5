"""Load generation with wrk (Debian's package): POSTs one body at a set concurrency.

wrk is C and uses a fraction of a core, so on a 2-core machine it disturbs the server far less
than a Python client would. Its latency percentiles are reported as printed by ``--latency``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class LoadResult:
    throughput: float  # requests/s with a 2xx answer
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers and socket errors
    requests: int
    statuses: dict[str, int]  # answers by status code
    socket_errors: int


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, body_path: Path, content_type: str, concurrency: int, seconds: float
) -> LoadResult:
    script = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
local f = io.open("{body_path}", "rb")
wrk.body = f:read("*all")
f:close()
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {{}} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("counts")) do
      io.write(string.format("status %d %d\\n", status, count))
    end
  end
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        lua.name,
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    Path(lua.name).unlink()
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    def latency(percent: str) -> float:
        match = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")

    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    seconds_match = re.search(r"requests in ([\d.]+)(us|ms|s|m)", output)
    assert seconds_match is not None
    seconds = float(seconds_match.group(1)) * _UNITS[seconds_match.group(2)] / 1000.0
    statuses: dict[str, int] = {}
    for status, count in re.findall(r"^status (\d+) (\d+)$", output, re.M):
        statuses[status] = statuses.get(status, 0) + int(count)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    socket_errors = sum(int(g) for g in socket.groups()) if socket else 0
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + socket_errors
    return LoadResult(
        throughput=(requests - errors) / seconds if seconds else 0.0,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        errors=errors,
        requests=requests,
        statuses=statuses,
        socket_errors=socket_errors,
    )
