"""Many concurrent HTTP clients from one test thread (asyncio, raw HTTP/1.1 on loopback), the
probes watched meanwhile, and the server's memory: what the overload tests measure."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import TOKENS, http


@dataclass
class Answer:
    status: int  # 0: no answer (refused, reset, or the client's timeout)
    seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


async def request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 20,
    source: str = "127.0.0.1",
) -> Answer:  # fmt: skip
    """One request on a new connection (Connection: close) from the loopback address `source`,
    timed from connect to last byte, with the server's key (tests/e2e/conftest.py) as http()
    sends it."""
    token_of = TOKENS.get(f"http://127.0.0.1:{port}")
    token = token_of() if token_of else None
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{auth}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    started = time.perf_counter()
    connection = asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    return await within(exchange(connection, head, body or b"", started), timeout, started)


async def exchange(
    connection: Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    head: str, body: bytes, started: float,
) -> Answer:  # fmt: skip
    """Send one request (`head`: its request line and header lines) on a new connection and
    read the answer to the end."""
    reader, writer = await connection
    try:
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        return parse(await reader.read(), started)
    finally:
        writer.close()


async def within(answer: Awaitable[Answer], timeout: float, started: float) -> Answer:
    """The answer, or status 0 when none came in time (refused, reset, unreadable, too slow)."""
    try:
        return await asyncio.wait_for(answer, timeout)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        return Answer(0, time.perf_counter() - started)


def parse(raw: bytes, started: float) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return Answer(int(lines[0].split()[1]), time.perf_counter() - started, headers, body)


async def clients_until(
    count: int, deadline: float, one: Callable[[], Awaitable[Answer]]
) -> list[Answer]:
    """`count` clients, each sending request after request until `deadline` (monotonic)."""

    async def client() -> list[Answer]:
        answers = []
        while time.monotonic() < deadline:
            answers.append(await one())
        return answers

    results = await asyncio.gather(*(client() for _ in range(count)))
    return [answer for answers in results for answer in answers]


class Probes:
    """/live and /ready polled every 100 ms on new connections while a scenario runs, from a
    thread of their own: the crowd's event loop, busy with hundreds of answers, would otherwise
    add its own delay to theirs."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.live: list[Answer] = []
        self.ready: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.live.append(_timed(self.port, "/live"))
            self.ready.append(_timed(self.port, "/ready"))
            self._stop.wait(0.1)

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join)

    def worst(self) -> tuple[float, float]:
        return max(a.seconds for a in self.live), max(a.seconds for a in self.ready)


def _timed(port: int, path: str) -> Answer:
    started = time.perf_counter()
    try:
        response = http("GET", f"http://127.0.0.1:{port}{path}", timeout=5)
    except OSError:
        return Answer(0, time.perf_counter() - started)
    return Answer(response.status, time.perf_counter() - started, response.headers, response.body)


class PeakRss:
    """The largest sum of VmRSS over the server's processes (main and workers), sampled."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_bytes = 0
        self._task: asyncio.Task | None = None

    def sample(self) -> None:
        pids = [self.pid, *_children(self.pid)]
        total = sum(_rss(pid) for pid in pids)
        self.peak_bytes = max(self.peak_bytes, total)

    async def _watch(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.2)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def p99(seconds: list[float]) -> float:
    if len(seconds) < 2:
        return max(seconds, default=0.0)
    return statistics.quantiles(seconds, n=100)[98]
