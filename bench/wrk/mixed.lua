-- 80% reads (GET /items/<random id>), 20% writes (half PATCH, half POST).
local rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
math.randomseed(os.time())
-- A table of headers replaces wrk.headers (where -H puts the bench's key): name it here too.
local bearer = os.getenv("BENCH_TOKEN") and ("Bearer " .. os.getenv("BENCH_TOKEN"))
local json = {["Content-Type"] = "application/json", ["Authorization"] = bearer}
local patch = {["Content-Type"] = "application/merge-patch+json", ["Authorization"] = bearer}
local post_body = '{"name":"Item mixed","description":"created by the mixed run","price":5,"quantity":1,"attributes":{"color":"green"}}'
request = function()
  local roll = math.random(1, 10)
  local id = math.random(1, rows)
  if roll <= 8 then
    return wrk.format("GET", "/items/" .. id)
  elseif roll == 9 then
    return wrk.format("PATCH", "/items/" .. id, patch, '{"quantity":1}')
  end
  return wrk.format("POST", "/items", json, post_body)
end
