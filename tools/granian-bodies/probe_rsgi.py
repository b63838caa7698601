import socket
import sys
import time

port = int(sys.argv[1])


def ping(path="/ping", timeout=3):
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        return s.recv(200).split(b"\r\n")[0].decode(), round(time.monotonic() - t, 3)
    except OSError as e:
        return "ERR " + type(e).__name__, round(time.monotonic() - t, 3)
    finally:
        s.close()


print("before:", ping(), ping("/hello"))
slow = []
t0 = time.monotonic()
for _i in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"a"'
    )
    slow.append(s)
print(f"opened {len(slow)} slow in {time.monotonic() - t0:.2f}s; during:", ping(), ping("/hello"))
for s in slow:
    s.setblocking(True)
    s.settimeout(5)
closed = 0
codes = {}
last = 0
for s in slow:
    try:
        d = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            d += c
        closed += 1
        code = d.split(b" ")[1].decode() if d else "none"
        codes[code] = codes.get(code, 0) + 1
    except OSError as e:
        codes[type(e).__name__] = codes.get(type(e).__name__, 0) + 1
    last = time.monotonic() - t0
print(
    f"slow clients: {codes}, closed by server: {closed}, last done {last:.2f}s after first opened"
)
print("after:", ping(), ping("/hello"))
