-- wrk script for bench/compare: one script, the path's mode after `--`.
--
--   wrk ... -s bench.lua URL -- fixed   BODY               POST BODY (form) every time
--   wrk ... -s bench.lua URL -- pool    FILE PREFIX         POST PREFIX..line, lines of FILE round-robin
--   wrk ... -s bench.lua URL -- bearer  FILE                GET with "Authorization: Bearer line"
--   wrk ... -s bench.lua URL -- refresh IN_FILE            refresh grant, chained (see below)
--
-- BENCH_AUTH (environment), when set, is sent as the Authorization header of the POST modes
-- (e.g. "Basic base64(client_id:secret)").
--
-- refresh: each line of IN_FILE is the newest refresh token of one chain (one session / token
-- family). A request takes a chain's token off the queue, the answer's new refresh token goes back
-- on it: every refresh token is used once, as both servers rotate them (single use). A chain whose
-- request failed, or was in flight when wrk stopped, is lost; done() writes the chains that are
-- left to BENCH_REFRESH_OUT for the next run.
--
-- done() prints one line "JSON {...}": requests, errors, non-2xx, latency percentiles in us.
-- BENCH_THREADS: wrk's -t (refresh splits the chains between the threads); BENCH_REFRESH_OUT: the
-- file done() writes the chains left to (refresh only, which also needs BENCH_WANT_RESPONSE=1).
local mode, bodies, headers = nil, {}, {}
local i, path, method = 0, nil, "POST"
local counter, threads = 0, {}
tid = 0 -- set per thread by setup()
queue = {} -- refresh: the chains' newest tokens (a global: done() reads it with thread:get)

local function lines(file)
  local out = {}
  for line in io.lines(file) do
    if #line > 0 then out[#out + 1] = line end
  end
  if #out == 0 then error("no lines in " .. file) end
  return out
end

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  threads[#threads + 1] = thread
end

function init(args)
  mode = args[1] or error("pass the mode after --")
  path = wrk.path
  local auth = os.getenv("BENCH_AUTH")
  if mode ~= "bearer" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    if auth and #auth > 0 then headers["Authorization"] = auth end
  end
  if mode == "fixed" then
    bodies = { args[2] or error("fixed: pass the body") }
  elseif mode == "pool" then
    local prefix = args[3] or ""
    for _, line in ipairs(lines(args[2])) do bodies[#bodies + 1] = prefix .. line end
  elseif mode == "bearer" then
    method = "GET"
    bodies = lines(args[2])
  elseif mode == "refresh" then
    -- chains are split between threads: thread k takes lines k, k+T, k+2T, ...
    local all, n = lines(args[2]), tonumber(os.getenv("BENCH_THREADS") or "1")
    for k = tid + 1, #all, n do queue[#queue + 1] = all[k] end
  else
    error("unknown mode " .. mode)
  end
  i = (tid * 7919) % #bodies
end

function request()
  if mode == "refresh" then
    local token = table.remove(queue, 1)
    -- no chain left (should not happen: more chains than connections): a refused request
    token = token or "none"
    return wrk.format("POST", path, headers, "grant_type=refresh_token&refresh_token=" .. token)
  end
  i = i % #bodies + 1
  if mode == "bearer" then
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. bodies[i] }, nil)
  end
  return wrk.format(method, path, headers, bodies[i])
end

-- wrk hands bodies to Lua only when the script defines response(): only for the refresh mode.
if os.getenv("BENCH_WANT_RESPONSE") == "1" then
  function response(status, _, body)
    local token = status == 200 and body and body:match('"refresh_token"%s*:%s*"([^"]+)"')
    if token then queue[#queue + 1] = token end
  end
end

function done(summary, latency, _)
  local e = summary.errors
  -- done() runs in wrk's main Lua state, where init() never ran: the environment tells the mode.
  local chains_out = os.getenv("BENCH_REFRESH_OUT")
  if chains_out and #chains_out > 0 then
    local out = assert(io.open(chains_out, "w"))
    for _, t in ipairs(threads) do
      for _, token in ipairs(t:get("queue") or {}) do out:write(token, "\n") end
    end
    out:close()
  end
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"connect_err":%d,"read_err":%d,"write_err":%d,"timeout_err":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
