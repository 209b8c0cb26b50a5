"""An open-loop load generator: requests arrive at a set rate whatever the answers do.

wrk is closed-loop: each connection sends its next request the moment an answer comes back, so
a quick 503 brings the next request at once and "4x overload" turns into a retry storm whose
rate is set by how fast refusals are. Overload is defined by arrivals instead (as wrk2 or
Gatling's open model do): Poisson arrivals at ``rate`` per second, each sent on an idle
keep-alive connection (a new one when none is idle), and every request's latency is timed from
its arrival, so a generator that falls behind shows up in the figures instead of hiding.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np

# Idle keep-alive connections older than this are not reused: uvicorn closes them after 5 s.
KEEP_ALIVE_S = 2.0


@dataclass
class OpenLoopResult:
    rate: float  # arrivals per second asked for
    seconds: float
    samples: list[tuple[int, float, bool]] = field(default_factory=list)  # status, ms, retry
    connections: int = 0  # connections the generator needed

    def latencies(self, status: int) -> np.ndarray:
        return np.array([ms for code, ms, _ in self.samples if code == status])

    def statuses(self) -> dict[str, int]:
        """Answers by status code (0: the connection failed)."""
        return dict(Counter(str(code) for code, _, _ in self.samples))

    def percentile(self, status: int, q: float) -> float | None:
        values = self.latencies(status)
        return round(float(np.percentile(values, q)), 1) if values.size else None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, "retry-after" in headers


async def _run(
    url: str, body: bytes, content_type: str, rate: float, seconds: float, seed: int
) -> OpenLoopResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    result = OpenLoopResult(rate, seconds)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(arrived: float) -> None:
        writer = None
        try:
            while idle:
                reader, writer, last_used = idle.pop()
                if time.perf_counter() - last_used < KEEP_ALIVE_S:
                    break
                writer.close()  # the server may be closing it: never send on a stale one
            else:
                reader, writer = await asyncio.open_connection(host, port)
                result.connections += 1
            writer.write(request)
            await writer.drain()
            status, retry = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            if writer is not None:
                writer.close()
            result.samples.append((0, (time.perf_counter() - arrived) * 1000, False))
            return
        result.samples.append((status, (time.perf_counter() - arrived) * 1000, retry))
        idle.append((reader, writer, time.perf_counter()))

    arrivals = random.Random(seed)
    start = time.perf_counter()
    due = start
    while due - start < seconds:
        due += arrivals.expovariate(rate)
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    for _, writer, _ in idle:
        writer.close()
    return result


def open_loop(
    url: str, body: bytes, content_type: str, rate: float, seconds: float, seed: int = 0
) -> OpenLoopResult:
    """Poisson arrivals at ``rate``/s for ``seconds``; every request's status and latency."""
    return asyncio.run(_run(url, body, content_type, rate, seconds, seed))
