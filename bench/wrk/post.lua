-- POST /items with a body of realistic size.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Item bench cedar maple","description":"created by wrk: alpha amber bold brisk cedar coral crisp dune ember fern","price":19.99,"quantity":3,"attributes":{"color":"red","size":{"w":10,"h":20},"tags":["bench","wrk"]}}'
