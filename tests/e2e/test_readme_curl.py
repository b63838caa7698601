"""The README's curl examples, run as written (bar the port) against a live server with the
token it tells the reader to set: none is refused for want of credentials."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_commands() -> list[str]:
    """Every curl command of the README's sh blocks, continuation lines joined, comments cut."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith("curl "):
                commands.append(command.split(" # ")[0].strip())
    return commands


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_readme_curl_example_is_authorised(start_server, clean_db):
    server = start_server(clean_db)
    commands = curl_commands()
    assert len(commands) >= 8
    statuses = []
    for command in commands:
        assert '-H "Authorization: Bearer $TOKEN"' in command, command
        command = command.replace("localhost:8000", server.url.removeprefix("http://"))
        command = command.replace("curl -si", "curl -s").replace("curl -s", "curl -s -o /dev/null")
        result = subprocess.run(
            ["bash", "-c", command + " -w '%{http_code}'"],
            env={**os.environ, "TOKEN": server.token}, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        statuses.append(int(result.stdout))
    # In order: create, read, 304, patch, the stale patch, two pages, delete, the bad body.
    assert statuses == [201, 200, 304, 200, 412, 200, 200, 200, 204, 422]
