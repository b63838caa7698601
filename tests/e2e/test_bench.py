"""`make bench` and `make paired` keep working: tiny runs produce complete reports with no
failed requests. (They measure nothing here: timing goals live in the benchmark, never in a
test.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.paired import Build, checked
from bench.run import AccessLines, wait_for_workers
from tests.helpers import free_port, http, wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_benchmark_runs_end_to_end_and_reports_every_scenario(tmp_path):
    out = tmp_path / "bench.json"
    env_path = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--rows", "2000", "--duration", "1", "--out", str(out)],
        cwd=ROOT, env=env_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["scenarios"]) == {
        "get", "list_first", "list_deep", "post", "patch", "put", "mixed",
    }  # fmt: skip
    assert set(report["ceilings"]) == {"pgbench_get", "pgbench_post", "granian_hello"}
    for name, scenario in report["scenarios"].items():
        assert scenario["errors"] == 0, (name, scenario)
        assert scenario["rps"] > 0, name
        assert scenario["peak_rss_mib"] > 0, name
        assert 0 < scenario["p50_ms"] <= scenario["p99_ms"], name
        # Measured with every worker serving, not only the first one up.
        assert len(scenario["requests_per_worker"]) == 2, (name, scenario)
        assert sum(scenario["requests_per_worker"]) >= scenario["requests"], (name, scenario)
    assert report["settings"]["rows"] == 2000
    assert "| get |" in result.stdout  # the markdown table for the README


def test_paired_comparison_measures_both_builds_in_every_round(tmp_path):
    out = tmp_path / "paired.json"
    env_path = {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.paired", "HEAD", "--rounds", "2", "--duration", "1",
         "--warmup", "1", "--rows", "2000", "--out", str(out)],
        cwd=ROOT, env=env_path, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["builds"] == ["HEAD", "working-tree"]
    assert len(report["rounds"]) == 2
    for measured in report["rounds"]:
        assert set(measured) == {"HEAD", "working-tree"}
        for build in measured.values():
            assert build["errors"] == 0, measured
            assert build["requests"] > 0, measured
            assert build["cpu_us_per_request"] > 0, measured
    assert "spent less CPU per request in" in result.stdout


def test_paired_comparison_refuses_a_build_the_server_would_not_import(tmp_path):
    (tmp_path / "src").mkdir()  # no itemsapi inside: the installed one would be imported
    with pytest.raises(SystemExit, match="would import"):
        checked(Build("elsewhere", tmp_path / "src"))


def test_the_benchmark_waits_for_every_worker_not_the_first_answer(tmp_path):
    log = tmp_path / "server.log"
    log.write_text('{"message":"Started worker-1"}\n')
    with pytest.raises(SystemExit, match="2 workers did not start"):
        wait_for_workers(log, 2, timeout=0.3)
    with log.open("a") as more:
        more.write('{"message":"Started worker-2"}\n')
    wait_for_workers(log, 2, timeout=0.3)


def test_access_lines_are_counted_by_worker_scenario_by_scenario(tmp_path):
    log = tmp_path / "server.log"
    log.write_text('{"logger":"itemsapi.access","pid":1}\n')  # before the first scenario
    lines = AccessLines(log)
    with log.open("a") as more:
        more.write('{"logger":"itemsapi.access","pid":1}\n' * 2)
        more.write('{"logger":"itemsapi.access","pid":2}\n{"logger":"itemsapi.cli","pid":1}\n')
        more.write('{"logger":"itemsapi.access","pid":2')  # still being written
    assert lines.requests_per_worker() == [2, 1]
    with log.open("a") as more:
        more.write("}\n")
    assert lines.requests_per_worker() == [1]


def test_the_bare_design_yardstick_answers_the_peers_requests(clean_db, tmp_path):
    # bench/bare_flask.py stands in for the project in the peers' script: it must answer their
    # four requests on the API's table as the API would, or its figures compare nothing.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "bare.log"
    command = [
        str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--workers", "1",
        "--port", str(port), "--no-log", "bench.bare_flask:app",
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "DATABASE_URL": clean_db}, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_until(lambda: http("GET", f"{url}/items/1").status == 404, 30, "the bare server")
        body = {"name": "bench", "description": "created by wrk", "price": 9.5, "quantity": 3,
                "attributes": {"k": "v"}}  # fmt: skip
        created = http("POST", f"{url}/items", body)  # post.lua's body
        assert created.status == 201
        item = created.json()
        assert {k: item[k] for k in body} == body
        assert http("GET", f"{url}/items/{item['id']}").json() == item
        patched = http("PATCH", f"{url}/items/{item['id']}", {"quantity": 7, "description": "p"})
        assert patched.status == 200
        assert (patched.json()["quantity"], patched.json()["version"]) == (7, 2)
        assert [i["id"] for i in http("GET", f"{url}/items?limit=20").json()["items"]] == [1]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert "served 1 items" in log.read_text()
