-- PATCH /items/<random id>: a merge patch touching a field and a nested attribute.
local rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
math.randomseed(os.time())
-- A table of headers replaces wrk.headers (where -H puts the bench's key): name it here too.
local bearer = os.getenv("BENCH_TOKEN") and ("Bearer " .. os.getenv("BENCH_TOKEN"))
local headers = {["Content-Type"] = "application/merge-patch+json", ["Authorization"] = bearer}
local body = '{"quantity":7,"attributes":{"size":{"h":25}}}'
request = function()
  return wrk.format("PATCH", "/items/" .. math.random(1, rows), headers, body)
end
