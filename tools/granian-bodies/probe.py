import socket
import sys
import time

port, mode = int(sys.argv[1]), sys.argv[2]


def ping(timeout=3):
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(100)
        return data.split(b"\r\n")[0].decode(), round(time.monotonic() - t, 3)
    except OSError as e:
        return "ERR " + type(e).__name__, round(time.monotonic() - t, 3)
    finally:
        s.close()


print("ping before:", ping())
slow = socket.create_connection(("127.0.0.1", port), timeout=5)
slow.sendall(
    b"POST /%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"a"' % mode.encode()
)
t = time.monotonic()
try:
    resp = slow.recv(200)
    print("slow got after {:.2f}s: {!r}".format(time.monotonic() - t, resp.split(b"\r\n")[0]))
    slow.settimeout(3)
    more = slow.recv(200)
    print(
        f"  then recv -> {more[:40]!r} after {time.monotonic() - t:.2f}s (b'' = closed by server)"
    )
except OSError as e:
    print(f"slow: {type(e).__name__} after {time.monotonic() - t:.2f}s")
print("ping while slow open:", ping(), ping())
slow.close()
time.sleep(0.3)
print("ping after slow closed:", ping())
