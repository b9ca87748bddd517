-- wrk: POST /api/v1/bookings/ with a unique Idempotency-Key, guest and date range per request.
-- BENCH_PROPERTIES: file of property public ids, one a line. BENCH_THREADS: wrk -t.
-- Thread t books only the properties i with i % threads == t, slot after slot, 3 days
-- apart, so no two requests ever ask for overlapping dates of one property.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local base = os.time() + 30 * 86400
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  mine = {}
  local i = 0
  for line in io.lines(os.getenv("BENCH_PROPERTIES")) do
    if i % nthreads == tid then
      table.insert(mine, line)
    end
    i = i + 1
  end
  counter = 0
end

function request()
  local prop = mine[(counter % #mine) + 1]
  local slot = math.floor(counter / #mine)
  local check_in = os.date("!%Y-%m-%d", base + slot * 3 * 86400)
  local check_out = os.date("!%Y-%m-%d", base + (slot * 3 + 2) * 86400)
  local key = string.format("bench-%s-%d-%d", run, tid, counter)
  counter = counter + 1
  local body = string.format(
    '{"property":"%s","check_in":"%s","check_out":"%s","guests":1,' ..
      '"guest":{"name":"Bench Guest","email":"%s@example.com"}}',
    prop, check_in, check_out, key)
  return wrk.format("POST", "/api/v1/bookings/", {
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
    ["Idempotency-Key"] = key,
  }, body)
end
