-- wrk script of benchmarks/serve_latency.py: POST the file named by $WRK_BODY with Content-Type $WRK_CTYPE,
-- and print one machine-readable summary line (latencies in microseconds) when the run ends.
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("WRK_CTYPE") or "application/octet-stream"
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
