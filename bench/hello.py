"""The HTTP ceiling: a bare WSGI callable returning a fixed item, served by Granian with the
API's settings. No Flask, no database: what Granian alone does on this machine."""

BODY = (
    b'{"id":1,"name":"Item 1 alpha cedar","description":"alpha amber bold brisk cedar coral",'
    b'"price":19.99,"quantity":5,"attributes":{"color":"red","size":{"w":10,"h":20}},'
    b'"version":1,"created_at":"2026-11-22T10:00:00.000000Z",'
    b'"updated_at":"2026-11-22T10:00:00.000000Z"}'
)
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
