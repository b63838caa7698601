-- POST /items as post.lua, each with a fresh Idempotency-Key (bench/paired.py --scenario post_key).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Item bench cedar maple","description":"created by wrk: alpha amber bold brisk cedar coral crisp dune ember fern","price":19.99,"quantity":3,"attributes":{"color":"red","size":{"w":10,"h":20},"tags":["bench","wrk"]}}'

-- Unique across rounds and runs: the start time and a random number, then a counter.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = "bench-" .. os.time() .. "-" .. math.random(1, 1000000000) .. "-"
local counter = 0

request = function()
  counter = counter + 1
  return wrk.format(nil, nil, {["Idempotency-Key"] = prefix .. counter}, nil)
end
