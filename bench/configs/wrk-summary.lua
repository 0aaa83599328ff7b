-- Prints wrk's run summary as one JSON line starting with "EDGEBENCH "
-- (latencies in microseconds) for bench/edgebench/drivers.py to read.
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'EDGEBENCH {"duration_us": %d, "requests": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p99": %d, "mean": %.1f, "max": %d}}\n',
    summary.duration, summary.requests, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
