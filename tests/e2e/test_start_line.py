"""The start line: workers wait for each other before they listen (real processes, forked)."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile

from itemsapi.serve import start_line

fork = multiprocessing.get_context("fork")


def arrive_and_wait() -> None:
    sys.exit(0 if start_line.wait(timeout=30) else 1)


def test_a_worker_is_held_until_every_worker_has_arrived():
    with start_line.drawn(3):
        waiting = [fork.Process(target=arrive_and_wait) for _ in range(2)]
        for worker in waiting:
            worker.start()
        for worker in waiting:
            worker.join(0.5)
            assert worker.is_alive()  # two of three arrived: still held
        assert start_line.wait(timeout=30)  # the third arrives
        for worker in waiting:
            worker.join(30)
            assert worker.exitcode == 0  # released, not timed out


def test_a_worker_started_after_all_have_arrived_goes_on_at_once():
    with start_line.drawn(2):
        assert not start_line.wait(timeout=0)  # alone at the line
        other = fork.Process(target=arrive_and_wait)
        other.start()
        other.join(30)
        assert other.exitcode == 0
        replacement = fork.Process(target=lambda: sys.exit(0 if start_line.wait(timeout=0) else 1))
        replacement.start()
        replacement.join(30)
        assert replacement.exitcode == 0  # timeout 0: it would have failed had it had to wait


def test_a_worker_serves_anyway_when_the_others_never_arrive():
    with start_line.drawn(2):
        assert start_line.wait(timeout=0.1) is False


def test_without_a_start_line_there_is_nothing_to_wait_for(monkeypatch):
    monkeypatch.delenv(start_line.ENV, raising=False)
    assert start_line.wait(timeout=0)


def test_the_start_line_lasts_as_long_as_the_server():
    with start_line.drawn(2):
        folder = os.environ[start_line.ENV].split(":", 1)[1]
        assert os.path.isdir(folder)
    assert start_line.ENV not in os.environ
    assert not os.path.exists(folder)


def test_a_worker_left_alone_at_the_line_serves_and_says_so(clean_db):
    build = (
        "import os\n"
        "from itemsapi.serve import server, start_line\n"
        "start_line.TIMEOUT = 0.2\n"
        "app = server.worker_app()\n"
        "print('built', app.name, flush=True)\n"
        "os._exit(0)\n"  # the pool's threads need not be wound down
    )
    with start_line.drawn(2):  # the other worker never comes
        result = subprocess.run(
            [sys.executable, "-c", build], env={**os.environ, "DATABASE_URL": clean_db},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [json.loads(line) for line in result.stdout.splitlines() if "serving before" in line]
    assert [w["level"] for w in warnings] == ["WARNING"]
    assert warnings[0]["message"] == "serving before every worker has started"
    assert "built itemsapi.app" in result.stdout


def test_without_a_writable_temporary_folder_workers_start_without_a_line(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with start_line.drawn(2):
        assert start_line.ENV not in os.environ
        assert start_line.wait(timeout=0)  # nothing to wait for
    assert "workers start without a start line" in caplog.text


def test_a_worker_started_after_the_folder_was_cleaned_away_serves():
    with start_line.drawn(2):
        folder = os.environ[start_line.ENV].split(":", 1)[1]
        os.rmdir(folder)  # what a /tmp cleaner does to a server running for weeks
        assert start_line.wait(timeout=0)
    assert start_line.ENV not in os.environ  # and the server's own clean-up did not fail
