"""How the running service behaves when its database is down, restarting, slow or hung, under
load and at shutdown. Real Granian processes against a PostgreSQL these tests control."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path

import psycopg
import pytest

from tests.helpers import (
    TableLock,
    api_backends,
    http,
    item_payload,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def assert_unavailable(response) -> None:
    """503 + Retry-After: a problem for API requests, a status document for probes."""
    assert response.status == 503, response.body
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    if response.headers["content-type"] == "application/problem+json":
        assert body["status"] == 503
    else:
        assert response.headers["content-type"] == "application/json"
        assert body["status"] == "unavailable"


def assert_problem_unavailable(response) -> None:
    assert_unavailable(response)
    assert response.headers["content-type"] == "application/problem+json"


def json_lines(server) -> list[dict]:
    return [json.loads(line) for line in server.log_lines()]  # any non-JSON line fails here


@pytest.fixture
def table_lock(cluster) -> Iterator[TableLock]:
    lock = TableLock(cluster.url)
    yield lock
    lock.conn.close()


def api_backends_waiting_on_lock(cluster) -> int:
    return len(api_backends(cluster.url, waiting_on_lock=True))


def test_starts_with_the_database_down_and_becomes_ready_by_itself(cluster, start_server):
    cluster.stop()
    server = start_server(cluster.url, wait="live", ITEMSAPI_POOL_TIMEOUT="0.5")

    assert http("GET", f"{server.url}/live").status == 200
    assert_unavailable(http("GET", f"{server.url}/ready"))
    health = http("GET", f"{server.url}/health")
    assert health.status == 503
    assert health.json()["checks"]["database"]["status"] == "unavailable"
    assert_problem_unavailable(http("GET", f"{server.url}/v1/items/1"))
    assert_problem_unavailable(http("POST", f"{server.url}/v1/items", item_payload()))

    cluster.start()
    wait_until(lambda: http("GET", f"{server.url}/ready").status == 200, 30, "ready")
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
    assert cluster.item_ids() == {1}


def test_without_the_schema_it_says_so_and_serves_once_init_db_has_run(
    empty_database, start_server
):
    server = start_server(empty_database, "--workers", "2", wait="live")
    ready = http("GET", f"{server.url}/ready")
    assert_unavailable(ready)
    assert ready.json()["reason"] == "SchemaMissing"
    for _ in range(6):  # spread over the workers: none of them has prepared anything
        assert_problem_unavailable(http("POST", f"{server.url}/v1/items", item_payload()))
    (error,) = [line for line in json_lines(server) if line["level"] == "ERROR"]
    assert "itemsapi migrate" in error["message"]

    init = subprocess.run(
        [sys.executable, "-m", "itemsapi", "init-db"],
        env={**os.environ, "DATABASE_URL": empty_database},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    wait_until(lambda: http("GET", f"{server.url}/ready").status == 200, 10, "ready")
    statuses = [http("POST", f"{server.url}/v1/items", item_payload()).status for _ in range(6)]
    assert statuses == [201] * 6


def test_a_database_restart_causes_503s_while_down_and_no_errors_after(cluster, start_server):
    server = start_server(cluster.url, "--workers", "2")  # default pool timeout: 2 s
    for _ in range(5):
        assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
    for _ in range(20):  # warm both workers' pools
        assert http("GET", f"{server.url}/v1/items/1").status == 200

    cluster.stop()
    assert http("GET", f"{server.url}/live").status == 200
    assert_unavailable(http("GET", f"{server.url}/ready"))
    time.sleep(3)  # long enough for the pools' reconnection attempts to back off
    for _ in range(3):
        assert_problem_unavailable(http("GET", f"{server.url}/v1/items/1"))
        assert_problem_unavailable(http("POST", f"{server.url}/v1/items", item_payload()))

    cluster.start()
    wait_until(lambda: http("GET", f"{server.url}/ready").status == 200, 30, "ready again")
    statuses = []
    for n in range(30):  # reads and writes alike, across both workers, all succeed
        statuses.append(http("GET", f"{server.url}/v1/items/{n % 5 + 1}").status)
        statuses.append(http("POST", f"{server.url}/v1/items", item_payload()).status)
        statuses.append(http("PATCH", f"{server.url}/v1/items/1", {"quantity": n}).status)
    assert set(statuses) == {200, 201}, statuses

    server.stop()
    records = json_lines(server)
    assert not [r for r in records if r.get("status") == 500]
    warnings = {r["logger"] for r in records if r["level"] == "WARNING"}
    assert "psycopg.pool" in warnings or "itemsapi.db.pool" in warnings  # pool events are logged


def test_statement_timeout_is_a_503_and_the_connection_stays_usable(
    cluster, start_server, table_lock
):
    server = start_server(
        cluster.url,
        ITEMSAPI_STATEMENT_TIMEOUT_MS="300",
        ITEMSAPI_POOL_MIN_SIZE="1",
        ITEMSAPI_POOL_MAX_SIZE="1",
    )
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201

    def backend_pids() -> set[int]:
        with psycopg.connect(cluster.url) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'itemsapi'"
            )
            return {row[0] for row in rows}

    before = backend_pids()
    table_lock.hold()
    slow = http("GET", f"{server.url}/v1/items/1")
    assert_problem_unavailable(slow)
    assert slow.json()["type"].endswith("database-timeout")
    table_lock.release()

    assert http("GET", f"{server.url}/v1/items/1").status == 200
    assert backend_pids() == before  # the same connection, back in the pool and healthy


def test_an_exhausted_pool_answers_503_fast_instead_of_hanging(cluster, start_server, table_lock):
    server = start_server(
        cluster.url,
        ITEMSAPI_POOL_MIN_SIZE="2",
        ITEMSAPI_POOL_MAX_SIZE="2",
        ITEMSAPI_POOL_TIMEOUT="0.5",
        ITEMSAPI_STATEMENT_TIMEOUT_MS="60000",
        # Without the read cache, whose single-flight would make the concurrent reads of item 1
        # one database read and wait on it: this is about the pool.
        ITEMSAPI_CACHE="false",
    )
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
    table_lock.hold()

    held: list[int] = []
    holders = [
        threading.Thread(target=lambda: held.append(http("GET", f"{server.url}/v1/items/1",
                                                         timeout=90).status))
        for _ in range(2)
    ]  # fmt: skip
    for t in holders:
        t.start()
    wait_until(lambda: api_backends_waiting_on_lock(cluster) == 2, 10, "both connections busy")

    # Both connections are stuck behind the lock for up to a minute; these must not wait.
    for _ in range(4):
        assert_problem_unavailable(http("GET", f"{server.url}/v1/items/1", timeout=10))
    assert api_backends_waiting_on_lock(cluster) == 2  # answered while the pool was still full
    metrics = http("GET", f"{server.url}/metrics").body.decode()
    assert "itemsapi_db_pool_timeouts_total 4.0" in metrics

    table_lock.release()
    for t in holders:
        t.join()
    assert held == [200, 200]


def test_ready_answers_within_its_bound_when_the_database_hangs(cluster, start_server):
    server = start_server(cluster.url, ITEMSAPI_READY_TIMEOUT="1", ITEMSAPI_POOL_TIMEOUT="1")
    assert http("GET", f"{server.url}/ready").status == 200

    cluster.freeze()
    try:
        assert http("GET", f"{server.url}/live", timeout=5).status == 200
        for _ in range(3):  # a client timeout of 5 s: the probe must answer well before
            assert_unavailable(http("GET", f"{server.url}/ready", timeout=5))
        assert http("GET", f"{server.url}/health", timeout=5).status == 503
    finally:
        cluster.thaw()
    wait_until(lambda: http("GET", f"{server.url}/ready").status == 200, 15, "ready after thaw")


def test_sigterm_lets_an_in_flight_request_finish(cluster, start_server, table_lock):
    server = start_server(cluster.url)
    table_lock.hold()
    result: list = []
    request = threading.Thread(
        target=lambda: result.append(http("POST", f"{server.url}/v1/items", item_payload(),
                                          timeout=30))
    )  # fmt: skip
    request.start()
    wait_until(lambda: api_backends_waiting_on_lock(cluster) == 1, 10, "the POST in flight")

    stopper = threading.Thread(target=server.stop)
    stopper.start()
    time.sleep(1)  # the server has been told to stop; the POST is still waiting on the lock
    assert server.process.poll() is None
    table_lock.release()

    request.join()
    stopper.join()
    assert result[0].status == 201
    assert cluster.item_ids() == {result[0].json()["id"]}
    assert server.process.returncode == 0


def test_sigterm_under_load_loses_no_acknowledged_write(cluster, start_server):
    server = start_server(cluster.url, "--workers", "2")
    acknowledged: list[int] = []
    failures: list[str] = []
    stop_clients = threading.Event()

    def client() -> None:
        while not stop_clients.is_set():
            try:
                response = http("POST", f"{server.url}/v1/items", item_payload(), timeout=10)
            except OSError as exc:  # refused or reset once the server has gone
                failures.append(type(exc).__name__)
                return
            if response.status == 201:
                acknowledged.append(response.json()["id"])
            else:
                failures.append(str(response.status))

    clients = [threading.Thread(target=client) for _ in range(6)]
    for t in clients:
        t.start()
    wait_until(lambda: len(acknowledged) >= 100, 30, "100 acknowledged writes")
    assert server.stop(timeout=20) == 0
    stop_clients.set()
    for t in clients:
        t.join()

    assert len(acknowledged) == len(set(acknowledged))
    assert set(acknowledged) <= cluster.item_ids()  # every 201 the clients saw is a row
    assert all(f in ("ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected",
                     "BrokenPipeError") for f in failures), failures  # fmt: skip
    json_lines(server)


def worker_pids(server) -> list[int]:
    main = server.process.pid
    return [int(pid) for pid in Path(f"/proc/{main}/task/{main}/children").read_text().split()]


def is_running(pid: int) -> bool:
    """Some thread of the process is still alive. Its sockets close only with its last thread:
    the first thread of a killed process shows as a zombie as soon as it has exited itself,
    while the others may still hold the listening socket (seen: a zombie first thread with
    both workers' sockets still listening)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return False
    return any(_thread_state(pid, thread) not in (None, "Z") for thread in threads)


def _thread_state(pid: int, thread: str) -> str | None:
    try:
        return Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # gone meanwhile (reading a vanishing task can fail with ESRCH too)
        return None


def blocked_signals(pid: int, thread: str) -> int:
    status = Path(f"/proc/{pid}/task/{thread}/status").read_text()
    return int(re.search(r"^SigBlk:\s+([0-9a-f]+)$", status, re.M)[1], 16)


def wait_for_workers_serving(server, count: int) -> None:
    """Until every worker has logged that it started: /ready answered by one says nothing of
    the others, which may still be building the app."""

    def started() -> int:  # on raw lines: the last one may still be half written
        return server.log_path.read_text().count('"message":"Started worker-')

    wait_until(lambda: started() == count, 30, f"{count} workers serving")


def test_workers_take_their_stop_from_the_main_process_only(cluster, start_server):
    server = start_server(cluster.url, "--workers", "2")
    wait_for_workers_serving(server, 2)
    workers = worker_pids(server)
    assert len(workers) == 2
    sigint = 1 << (signal.SIGINT - 1)
    for pid in workers:
        threads = os.listdir(f"/proc/{pid}/task")
        assert len(threads) > 1  # Granian's and the pool's threads, all started by now
        for thread in threads:
            assert blocked_signals(pid, thread) & sigint, (pid, thread)
    main = str(server.process.pid)
    assert not blocked_signals(server.process.pid, main) & sigint  # Ctrl-C still reaches it


def test_ctrl_c_stops_the_server_and_every_worker_at_once(cluster, start_server):
    server = start_server(cluster.url, "--workers", "2")
    wait_for_workers_serving(server, 2)
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
    os.killpg(server.process.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    assert server.process.wait(timeout=5) == 0  # not the shutdown timeout's 10 s
    messages = [line["message"] for line in json_lines(server)]
    assert messages.count("Stopping worker-1") + messages.count("Stopping worker-2") == 2
    assert not [m for m in messages if "refused to gracefully stop" in m]


def test_a_stop_while_workers_are_starting_ends_the_server_at_once(cluster, start_server):
    server = start_server(cluster.url, "--workers", "2", wait=None)

    def spawned() -> bool:
        return "Spawning worker-2" in server.log_path.read_text()

    wait_until(spawned, 30, "the workers to be spawned", interval=0.002)  # tightly: see below
    time.sleep(0.03)  # into the workers' app factory: its imports and create_app take ~150 ms
    server.process.send_signal(signal.SIGTERM)  # docker stop, right after start
    assert server.process.wait(timeout=5) == 0  # not the shutdown timeout's 10 s
    messages = [line["message"] for line in json_lines(server)]
    assert not [m for m in messages if "refused to gracefully stop" in m]
    # The stop reached at least one worker before it served: the case this test is about.
    assert sum(m.startswith("Started worker-") for m in messages) < 2


def test_a_second_server_on_the_same_port_refuses_to_start(cluster, start_server):
    # Granian binds with SO_REUSEPORT: unchecked, the second server would start and take a
    # share of the first one's connections.
    first = start_server(cluster.url)
    port = first.url.rsplit(":", 1)[1]
    second = subprocess.Popen(
        [sys.executable, "-m", "itemsapi", "serve", "--port", port],
        env={**os.environ, "DATABASE_URL": cluster.url},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = second.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(second.pid, signal.SIGKILL)
        second.communicate()
        pytest.fail("the second server started on a port the first one serves")
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in output
    assert "Traceback" not in output
    assert http("GET", f"{first.url}/ready").status == 200


def test_a_worker_that_dies_is_replaced_while_the_other_serves(cluster, start_server):
    # An out-of-memory kill or a crash in native code: one worker gone must not take the
    # server, and the requests the other worker is serving, down with it.
    server = start_server(cluster.url, "--workers", "2")
    wait_for_workers_serving(server, 2)
    dead, survivor = worker_pids(server)
    os.kill(dead, signal.SIGKILL)
    # Connections the kernel had queued on the dead worker's socket, or sent there in the
    # moment before it drops that socket, are reset (README, Operations); later ones go to the
    # survivor.
    wait_until(lambda: not is_running(dead), 10, "the killed worker to exit")
    ready = f"{server.url}/ready"  # wait_until takes a refused or reset request as "not yet"
    wait_until(lambda: http("GET", ready, timeout=2).status == 200, 5, "an answer after it died")
    for _ in range(20):
        assert http("GET", f"{server.url}/ready").status == 200
    wait_until(lambda: len(set(worker_pids(server)) - {dead}) == 2, 30, "a new worker")
    assert survivor in worker_pids(server)
    wait_for_workers_serving(server, 3)  # the replacement has started, too
    assert server.process.poll() is None
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201


def test_metrics_are_summed_over_two_workers(cluster, start_server):
    server = start_server(cluster.url, "--workers", "2")
    assert http("POST", f"{server.url}/v1/items", item_payload()).status == 201
    sent = 0
    while sent < 400:  # until both workers have answered some of them
        assert http("GET", f"{server.url}/v1/items/1").status == 200
        sent += 1
        if sent % 20 == 0:
            pids = {r["pid"] for r in json_lines(server) if r.get("path") == "/v1/items/1"}
            if len(pids) == 2:
                break
    assert len(pids) == 2, "Granian spread no requests to the second worker"

    sample = 'itemsapi_http_requests_total{method="GET",route="/v1/items/{item_id}",status="200"}'
    for _ in range(6):  # whichever worker answers the scrape, it reports the sum
        scrape = http("GET", f"{server.url}/metrics")
        assert scrape.status == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        lines = scrape.body.decode().splitlines()
        assert f"{sample} {float(sent)}" in lines
        assert any(line.startswith("itemsapi_db_pool_connections ") for line in lines)
        assert any(line.startswith("itemsapi_http_request_duration_seconds_bucket") for line in
                   lines)  # fmt: skip


def test_every_worker_listens_by_the_time_the_first_answers(cluster, start_server):
    # A client that opens its keep-alive connections at the first answer (a proxy's pool, a
    # load generator) must find every worker listening, or all its connections stay on one.
    server = start_server(cluster.url, "--workers", "2", wait=None)
    host, port = server.url.removeprefix("http://").split(":")

    def answers() -> bool:
        return http("GET", f"{server.url}/live", timeout=2).status == 200

    # Polled tightly: a worker listening alone used to do so for ~100 ms.
    wait_until(answers, 30, "a first answer", interval=0.002)
    connections = [HTTPConnection(host, int(port), timeout=10) for _ in range(32)]
    for connection in connections:
        connection.connect()
    for connection in connections:
        connection.request("GET", "/v1/items/1")
        assert connection.getresponse().read() is not None
        connection.close()
    pids = {r["pid"] for r in json_lines(server) if r.get("path") == "/v1/items/1"}
    assert len(pids) == 2, "every connection opened at the first answer went to one worker"
