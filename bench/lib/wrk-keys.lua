-- wrk script for the closed-loop runs: rotates through the benchmark's API keys (one per line in
-- the file named by WRK_KEYS, or none), pre-formats every request once, and counts any answer
-- that is not a 200 so the harness can refuse a round that "succeeded" with errors.
local keys = {}
local path = os.getenv("WRK_KEYS")
if path and path ~= "" then
  for line in io.lines(path) do
    if line ~= "" then keys[#keys + 1] = line end
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  requests = {}
  bad = 0
  local n = #keys
  if n == 0 then
    requests[1] = wrk.format("GET", wrk.path)
  else
    -- Each thread starts at a different key so the load spreads over all of them.
    for i = 1, n do
      requests[i] = wrk.format("GET", wrk.path, { ["Authorization"] = "Bearer " .. keys[i] })
    end
  end
  idx = 0
end

function request()
  idx = idx % #requests + 1
  return requests[idx]
end

function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, reqs)
  local badTotal = 0
  for _, t in ipairs(threads) do badTotal = badTotal + t:get("bad") end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"durationUs":%d,"non200":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\n',
    summary.requests, summary.duration, badTotal, e.connect, e.read, e.write, e.timeout, e.status))
end
