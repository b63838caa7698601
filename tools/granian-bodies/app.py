import threading

DEADLINE = 1.0


def _reader(inp, mode, n, box, done):
    try:
        if mode == "a":
            box.append(inp.read(n))
        elif mode == "b":
            got = b""
            while len(got) < n:
                chunk = inp.read(min(1024, n - len(got)))
                if not chunk:
                    break
                got += chunk
            box.append(got)
        elif mode == "c":
            box.append(b"".join(inp))
    finally:
        done.set()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    mode = path.strip("/")
    n = int(environ.get("CONTENT_LENGTH") or 0)
    box, done = [], threading.Event()
    if mode == "same":
        body = environ["wsgi.input"].read(n)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got %d" % len(body)]
    t = threading.Thread(
        target=_reader, args=(environ["wsgi.input"], mode.rstrip("g"), n, box, done), daemon=True
    )
    t.start()
    if done.wait(DEADLINE):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got %d" % len(box[0])]
    start_response(
        "408 Request Timeout",
        [("Content-Type", "text/plain"), ("Content-Length", "7"), ("Connection", "close")],
    )
    if mode.endswith("g"):
        # variant: send the 408 at once, but return to Granian only once the reader is done
        def gen():
            yield b"timeout"
            done.wait()

        return gen()
    return [b"timeout"]
