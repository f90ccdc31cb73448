-- wrk script: POST /api/v1/auth/validate with the tokens of a file (one a line), round-robin.
--   wrk -t1 -c16 -d15s -s validate.lua http://127.0.0.1:PORT/api/v1/auth/validate -- TOKENS_FILE
-- Each wrk thread starts at a different offset. done() prints one JSON line, prefixed "JSON ",
-- with the request count, errors, non-2xx count and latency percentiles in microseconds.
local bodies = {}
local i = 0
local path = "/api/v1/auth/validate"
local headers = { ["Content-Type"] = "application/json" }
local thread_no = 0

function setup(thread)
  thread:set("thread_no", thread_no)
  thread_no = thread_no + 1
end

function init(args)
  local file = args[1] or error("pass the tokens file after --")
  for line in io.lines(file) do
    if #line > 0 then bodies[#bodies + 1] = '{"token":"' .. line .. '"}' end
  end
  i = (thread_no or 0) * 7919 % #bodies
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", path, headers, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"connect_err":%d,"read_err":%d,"write_err":%d,"timeout_err":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
