"""The image's start command and health check, run outside a container on the test database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import dockerfile_instructions
from tests.helpers import http

pytestmark = pytest.mark.e2e


def image_environment() -> dict[str, str]:
    """The runtime stage's ENV, as the container would see it."""
    env: dict[str, str] = {}
    for name, args in dockerfile_instructions():
        if name == "FROM":
            env = {}  # each stage starts afresh; the last one is the image
        elif name == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_the_image_cmd_serves_a_ready_api_that_passes_its_healthcheck(
    start_server, clean_db, tmp_path
):
    instructions = dict(dockerfile_instructions()[::-1])
    command = json.loads(instructions["CMD"])
    env = image_environment()
    assert env["ITEMSAPI_WORKERS"] == "2"
    # Outside the image: its virtual environment is ours, /tmp/metrics a test folder, and the
    # server listens on loopback only.
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=env["PATH"].replace("/opt/venv/bin", venv_bin).replace("$PATH", "/usr/bin:/bin"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        ITEMSAPI_HOST="127.0.0.1",
    )
    server = start_server(clean_db, command=command, base_env=env)
    assert http("POST", f"{server.url}/v1/items", {"name": "from the image command"}).status == 201

    check = json.loads(instructions["HEALTHCHECK"].split(" CMD ", 1)[1])
    check = [arg.replace("127.0.0.1:8000", server.url.removeprefix("http://")) for arg in check]
    assert check[0] == "python"
    result = subprocess.run([sys.executable, *check[1:]], timeout=10, check=False)
    assert result.returncode == 0
