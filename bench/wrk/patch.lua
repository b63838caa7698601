-- PATCH /items/<random id>: a merge patch touching a field and a nested attribute.
local rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
math.randomseed(os.time())
local headers = {["Content-Type"] = "application/merge-patch+json"}
local body = '{"quantity":7,"attributes":{"size":{"h":25}}}'
request = function()
  return wrk.format("PATCH", "/items/" .. math.random(1, rows), headers, body)
end
