-- wrk script for a latency tail at a steady rate (scripts/benchlib.py `paced`): each
-- connection waits an exponential gap (mean PACED_GAP_MS) before each request, so the
-- requests arrive like independent users rather than back to back; done() prints the
-- count of non-200 answers and wrk's whole latency histogram (microseconds, count).
local gap_ms = tonumber(os.getenv("PACED_GAP_MS"))
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
end

function delay()
  return math.floor(-gap_ms * math.log(1 - math.random()) + 0.5)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local not_200 = 0
  for _, t in ipairs(threads) do
    not_200 = not_200 + t:get("bad")
  end
  io.write(string.format("paced requests %d not_200 %d socket_errors %d\n", summary.requests, not_200,
    e.connect + e.read + e.write + e.timeout))
  for i = 1, #latency do
    local us, count = latency(i)
    io.write(string.format("paced latency %d %d\n", us, count))
  end
end
