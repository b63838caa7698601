"""The database check behind /ready and /health, bounded in time whatever the database does.

Ready means the database answers and its schema is at least the version this code needs: every
migration shipped with it has been applied. The server never migrates (only `itemsapi migrate`
does, or the embedded default at start): it stays unready, naming what is pending in its log,
and becomes ready by itself once they are applied.

The check runs on one background thread per process and the caller waits at most `timeout`:
a hung server or an exhausted pool makes the probe answer "unavailable" on time, and while one
check is stuck, later probes wait on that same check instead of piling up more. A server that
refuses connections outright is reported at once, without waiting for the pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from itemsapi.db.database import Database
from itemsapi.db.items import ItemRepository
from itemsapi.errors import DatabaseUnavailable, ItemsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    latency_ms: float | None
    error: str | None = None
    pending: tuple[str, ...] = ()  # file names of migrations not applied yet


class DatabaseCheck:
    def __init__(
        self,
        database: Database,
        repository: ItemRepository,
        timeout: float,
        required: Mapping[int, str],
    ) -> None:
        self._database = database
        self._repository = repository
        self._timeout = timeout
        self._required = dict(required)  # version -> file name of every migration shipped
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-check")
        self._lock = threading.Lock()
        self._inflight: Future[CheckResult] | None = None
        self._last: CheckResult | None = None

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
        last = self._last
        self._last = result
        if last is not None and (last.ok, last.error) == (result.ok, result.error):
            return
        if result.ok:
            log.info("database available", extra={"latency_ms": result.latency_ms})
        elif result.pending:
            log.warning(
                "not ready: migrations pending; run `itemsapi migrate`",
                extra={"pending": list(result.pending)},
            )
        else:
            log.warning("database unavailable", extra={"reason": result.error})

    def _ping(self) -> CheckResult:
        started = time.perf_counter()
        if self._database.refuses_connections():
            return CheckResult(False, _ms_since(started), DatabaseUnavailable.__name__)
        try:
            # Half the probe's time for the pool, so that a pool that cannot connect says so
            # (DatabaseUnavailable) before the probe gives up waiting: one reason, not two.
            applied = self._repository.ping(self._timeout / 2)
        except ItemsError as exc:
            return CheckResult(False, _ms_since(started), type(exc).__name__)
        pending = tuple(name for v, name in sorted(self._required.items()) if v not in applied)
        if pending:
            return CheckResult(False, _ms_since(started), "MigrationsPending", pending)
        return CheckResult(True, _ms_since(started))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
