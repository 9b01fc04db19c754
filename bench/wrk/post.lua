-- wrk script for bench/run: POST a fixed JSON body (env BENCH_BODY) and print one machine-readable
-- line with the request count, errors and latency percentiles (microseconds).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"params":{"msg":"hi"}}'
wrk.headers["Content-Type"] = "application/json"

local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
