-- wrk script for bench/run part 5 (and 6): a request per call made from templates, GET or POST.
--   BENCH_METHOD    GET or POST (default POST)
--   BENCH_PATH      the path, with the placeholders below (e.g. /api/collections/todos/records/{TID})
--   BENCH_TEMPLATE  the body (POST only), with the same placeholders
--   {TID}  a random existing todo id: string.format(BENCH_TID_FMT, 0..BENCH_ROWS-1)   (default t%014d)
--   {UID}  a random existing user:    string.format(BENCH_UID_FMT, 0..BENCH_USERS-1)  (default u%03d)
--   {NEW}  a string never used before in this run (per thread prefix + counter)
-- Prints one machine-readable BENCHJSON line like post.lua.
local method = os.getenv("BENCH_METHOD") or "POST"
local path = os.getenv("BENCH_PATH") or "/"
local template = os.getenv("BENCH_TEMPLATE") or ""
local rows = tonumber(os.getenv("BENCH_ROWS") or "10000")
local users = tonumber(os.getenv("BENCH_USERS") or "500")
local tid_fmt = os.getenv("BENCH_TID_FMT") or "t%014d"
local uid_fmt = os.getenv("BENCH_UID_FMT") or "u%03d"
local run = os.getenv("BENCH_RUN") or "r"
local headers = {}
if method == "POST" then
  headers["Content-Type"] = "application/json"
end
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

local function fill(s)
  if s:find("{TID}", 1, true) then
    s = s:gsub("{TID}", string.format(tid_fmt, math.random(0, rows - 1)))
  end
  if s:find("{UID}", 1, true) then
    s = s:gsub("{UID}", string.format(uid_fmt, math.random(0, users - 1)))
  end
  if s:find("{NEW}", 1, true) then
    s = s:gsub("{NEW}", prefix .. counter)
  end
  return s
end

request = function()
  counter = counter + 1
  if method == "POST" then
    return wrk.format("POST", fill(path), headers, fill(template))
  end
  return wrk.format(method, fill(path), headers)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
