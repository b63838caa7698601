"""A thin RSGI front: reads the body asynchronously with a deadline, then runs the WSGI app in a
thread."""

import asyncio
import io
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from flaskapp import app as wsgi_app

DEADLINE = float(os.environ.get("BODY_DEADLINE", "1.0"))
MAX_BODY = 1 << 20
_pool = ThreadPoolExecutor(int(os.environ.get("FRONT_THREADS", "16")))
_base = {
    "wsgi.version": (1, 0),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
    "SCRIPT_NAME": "",
    "wsgi.input_terminated": True,
}


def _environ(scope, body):
    env = dict(_base)
    env["REQUEST_METHOD"] = scope.method
    env["PATH_INFO"] = scope.path
    env["QUERY_STRING"] = scope.query_string
    env["SERVER_PROTOCOL"] = "HTTP/" + scope.http_version
    env["wsgi.url_scheme"] = scope.scheme
    host, _, port = scope.server.rpartition(":")
    env["SERVER_NAME"], env["SERVER_PORT"] = host, port
    env["REMOTE_ADDR"] = scope.client.rpartition(":")[0]
    for k, v in scope.headers.items():
        if k == "content-type":
            env["CONTENT_TYPE"] = v
        elif k == "content-length":
            env["CONTENT_LENGTH"] = v
        else:
            env["HTTP_" + k.upper().replace("-", "_")] = v
    env["wsgi.input"] = io.BytesIO(body)
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    return env


def _run(env):
    box = []

    def start_response(status, headers, exc_info=None):
        box.append((int(status[:3]), headers))

    rv = wsgi_app(env, start_response)
    try:
        data = b"".join(rv)
    finally:
        getattr(rv, "close", lambda: None)()
    return box[0][0], box[0][1], data


async def app(scope, proto):
    if scope.proto != "http":
        return
    if scope.path == "/ping":
        proto.response_bytes(200, [("content-type", "text/plain")], b"pong")
        return
    body = b""
    if scope.headers.get("content-length", "0") != "0" or "transfer-encoding" in scope.headers:
        try:
            async with asyncio.timeout(DEADLINE):
                body = await proto()
        except TimeoutError:
            proto.response_bytes(
                408, [("content-type", "text/plain"), ("connection", "close")], b"timeout"
            )
            return
    status, headers, data = await asyncio.get_running_loop().run_in_executor(
        _pool, _run, _environ(scope, body)
    )
    proto.response_bytes(status, headers, data)
