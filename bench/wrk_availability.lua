-- wrk: GET /api/v1/properties/<id>/availability/ for 30 nights, rotating over the properties.
-- BENCH_PROPERTIES: file of property public ids, one a line.
local start = os.date("!%Y-%m-%d", os.time() + 30 * 86400)
local finish = os.date("!%Y-%m-%d", os.time() + 60 * 86400)

function init(args)
  props = {}
  for line in io.lines(os.getenv("BENCH_PROPERTIES")) do
    table.insert(props, line)
  end
  counter = 0
end

function request()
  local prop = props[(counter % #props) + 1]
  counter = counter + 1
  return wrk.format("GET", string.format(
    "/api/v1/properties/%s/availability/?start=%s&end=%s", prop, start, finish),
    {["Accept"] = "application/json"})
end
