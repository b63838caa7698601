-- GET /items/<random id>; every id from 1 to BENCH_ROWS exists.
local rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/items/" .. math.random(1, rows))
end
