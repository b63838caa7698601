wrk.method = "POST"
wrk.body = '{"name": "x", "price": 1}'
wrk.headers["Content-Type"] = "application/json"
