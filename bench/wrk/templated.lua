-- wrk script for bench/run: POST to BENCH_PATH a body made per request from BENCH_TEMPLATE, where
--   {ID}  becomes a random existing id  (i<0..BENCH_ROWS-1>)
--   {GRP} becomes a random group         (0..BENCH_GROUPS-1)
--   {NEW} becomes an id never used before (per thread prefix + counter)
-- and print one machine-readable line like post.lua.
local template = os.getenv("BENCH_TEMPLATE") or "{}"
local path = os.getenv("BENCH_PATH") or "/"
local rows = tonumber(os.getenv("BENCH_ROWS") or "1000")
local groups = tonumber(os.getenv("BENCH_GROUPS") or "50")
local run = os.getenv("BENCH_RUN") or "r"
local headers = {["Content-Type"] = "application/json"}
local counter = 0
local prefix = "n"

local threads = {}
setup = function(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

init = function(args)
  prefix = "n" .. run .. "-" .. tostring(tid or 0) .. "-"
  math.randomseed(os.time() + (tid or 0) * 7919)
end

request = function()
  counter = counter + 1
  local body = template
  body = body:gsub("{ID}", "i" .. math.random(0, rows - 1))
  body = body:gsub("{GRP}", tostring(math.random(0, groups - 1)))
  body = body:gsub("{NEW}", prefix .. counter)
  return wrk.format("POST", path, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
