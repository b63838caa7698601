"""The database check behind /ready and /health, bounded in time whatever the database does.

The check runs on one background thread per process and the caller waits at most `timeout`:
a hung server or an exhausted pool makes the probe answer "unavailable" on time, and while one
check is stuck, later probes wait on that same check instead of piling up more.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from itemsapi.errors import ItemsError
from itemsapi.repository import ItemRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    latency_ms: float | None
    error: str | None = None


class DatabaseCheck:
    def __init__(self, repository: ItemRepository, timeout: float) -> None:
        self._repository = repository
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-check")
        self._lock = threading.Lock()
        self._inflight: Future[CheckResult] | None = None
        self._last_ok: bool | None = None

    def run(self) -> CheckResult:
        with self._lock:
            if self._inflight is None or self._inflight.done():
                self._inflight = self._executor.submit(self._ping)
            future = self._inflight
        try:
            result = future.result(timeout=self._timeout)
        except FutureTimeout:
            result = CheckResult(False, None, f"no answer within {self._timeout:g}s")
        self._note(result)
        return result

    def _note(self, result: CheckResult) -> None:
        if result.ok == self._last_ok:
            return
        if result.ok:
            log.info("database available", extra={"latency_ms": result.latency_ms})
        else:
            log.warning("database unavailable", extra={"reason": result.error})
        self._last_ok = result.ok

    def _ping(self) -> CheckResult:
        started = time.perf_counter()
        try:
            self._repository.ping(self._timeout)
        except ItemsError as exc:
            return CheckResult(False, _ms_since(started), type(exc).__name__)
        return CheckResult(True, _ms_since(started))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
