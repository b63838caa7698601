-- POST /items as post.lua, each with a fresh Idempotency-Key (bench/paired.py --scenario post_key).
wrk.method = "POST"
wrk.body = '{"name":"Item bench cedar maple","description":"created by wrk: alpha amber bold brisk cedar coral crisp dune ember fern","price":19.99,"quantity":3,"attributes":{"color":"red","size":{"w":10,"h":20},"tags":["bench","wrk"]}}'
-- A table of headers replaces wrk.headers (where -H puts the bench's key): name it here too.
local bearer = os.getenv("BENCH_TOKEN") and ("Bearer " .. os.getenv("BENCH_TOKEN"))
local headers = {["Content-Type"] = "application/json", ["Authorization"] = bearer}

-- Unique across rounds and runs: the start time and a random number, then a counter.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local prefix = "bench-" .. os.time() .. "-" .. math.random(1, 1000000000) .. "-"
local counter = 0

request = function()
  counter = counter + 1
  headers["Idempotency-Key"] = prefix .. counter
  return wrk.format(nil, nil, headers, nil)
end
