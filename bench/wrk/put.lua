-- PUT /items/<random id>: a full replacement.
local rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
math.randomseed(os.time())
-- A table of headers replaces wrk.headers (where -H puts the bench's key): name it here too.
local bearer = os.getenv("BENCH_TOKEN") and ("Bearer " .. os.getenv("BENCH_TOKEN"))
local headers = {["Content-Type"] = "application/json", ["Authorization"] = bearer}
local body = '{"name":"Item replaced by wrk","description":"replaced: alpha amber bold brisk cedar","price":24.5,"quantity":9,"attributes":{"color":"blue","size":{"w":12,"h":20}}}'
request = function()
  return wrk.format("PUT", "/items/" .. math.random(1, rows), headers, body)
end
