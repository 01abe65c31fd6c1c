-- wrk script: random users from 0..N-1, an API key, JSON summary at the end.
local users = tonumber(os.getenv("BENCH_USERS") or "10000")
local extra = os.getenv("BENCH_QUERY") or ""
local key = os.getenv("BENCH_KEY") or ""
math.randomseed(42)

request = function()
  local path = "/v1/recommendations?limit=10&user_id=u" .. math.random(0, users - 1) .. extra
  return wrk.format("GET", path, {["X-API-Key"] = key})
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'JSON {"requests": %d, "rps": %.1f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, ' ..
    '"errors": %d, "non_2xx": %d}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
