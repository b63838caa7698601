"""Headless Chromium driven through its DevTools protocol, over the pipe Chromium opens with
--remote-debugging-pipe (file descriptors 3 and 4: JSON messages ended by NUL), so no
WebSocket client is needed. Enough for the e2e tests: open a page, run JavaScript in it (a
promise awaited), and read the browser's own log (CORS refusals, CSP violations)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail(
            "chromium is not installed: `make tools` installs it (apt-get install chromium)"
        )
    return found


class Browser:
    def __init__(self, profile: Path) -> None:
        to_browser, from_browser = os.pipe(), os.pipe()

        def on_fds_3_and_4() -> None:  # in the child, before exec
            os.dup2(to_browser[0], 3)
            os.dup2(from_browser[1], 4)

        self.process = subprocess.Popen(
            [chromium(), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}"],
            preexec_fn=on_fds_3_and_4, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser[0])
        os.close(from_browser[1])
        self._out, self._in = to_browser[1], from_browser[0]
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._out)
        os.close(self._in)

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        message: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") != self._last_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply["result"]

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, before_load: str | None = None) -> None:
        """A new tab on `url`, with the Log domain on (its entries land in `events`);
        `before_load` runs in the page before any of its own scripts."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Log.enable")
        self.send("Page.enable")
        if before_load:
            self.send("Page.addScriptToEvaluateOnNewDocument", source=before_load)
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """The value of `expression` in the page, a promise awaited."""
        result = self.send(
            "Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
            returnByValue=True,
        )  # fmt: skip
        if "exceptionDetails" in result:
            raise AssertionError(f"the page's script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 60) -> Any:
        """Poll a JavaScript expression in the page until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(condition)
            except (AssertionError, RuntimeError):
                value = None  # the page is still loading: its context may come and go
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"never true in the page: {condition}")

    def log_texts(self) -> list[str]:
        return [
            event["params"]["entry"]["text"]
            for event in self.events
            if event.get("method") == "Log.entryAdded"
        ]
