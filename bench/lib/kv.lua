-- wrk script for bench/kv.sh: Gossamer's KV API and etcd's JSON gateway, same keys, same values.
--
-- Chosen with environment variables (read in every thread):
--   BENCH_SYSTEM  gossamer | etcd
--   BENCH_OP      put | get | sget   (sget: etcd serializable range; linearizable is etcd's default)
--   BENCH_KEYS    number of distinct keys, bench/k1 .. bench/k<N> (default 1000)
--   BENCH_VALUE   value size in bytes (default 256)
--
-- Every request is built once in init() (one per key); request() only cycles through them, so the load
-- generator spends as little CPU as possible (it shares the cores with the servers). Each thread starts at a
-- different offset so the threads spread over the key space.
--
-- done() prints one machine-readable line, parsed by bench/kv.sh:
--   WRKRESULT requests=.. duration_us=.. rps=.. p50_us=.. p90_us=.. p99_us=.. max_us=.. mean_us=..
--             non2xx=.. connect=.. read=.. write=.. timeout=..
-- (non2xx is wrk's count of responses with status > 399; these APIs never answer 3xx.)

local system = os.getenv("BENCH_SYSTEM") or "gossamer"
local op = os.getenv("BENCH_OP") or "put"
local nkeys = tonumber(os.getenv("BENCH_KEYS") or "1000")
local vsize = tonumber(os.getenv("BENCH_VALUE") or "256")

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  local n = #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(v / 262144) % 64
    local c2 = math.floor(v / 4096) % 64
    local c3 = math.floor(v / 64) % 64
    local c4 = v % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) .. b64chars:sub(c2 + 1, c2 + 1)
      .. (b and b64chars:sub(c3 + 1, c3 + 1) or "=") .. (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- The same printable value for both systems (Gossamer stores it as UTF-8 text, etcd as bytes).
local function value()
  local pattern = "gossamer-bench-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ|"
  local s = string.rep(pattern, math.ceil(vsize / #pattern))
  return s:sub(1, vsize)
end

local thread_id = 0
local counter = 0
local requests = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end

function init(args)
  local id = tonumber(wrk.thread:get("id")) or 1
  local v = value()
  local vb64 = base64(v)
  for k = 1, nkeys do
    local key = "bench/k" .. k
    local r
    if system == "gossamer" then
      if op == "put" then
        r = wrk.format("PUT", "/v1/kv/" .. key, { ["Content-Type"] = "text/plain" }, v)
      else
        r = wrk.format("GET", "/v1/kv/" .. key .. "?raw", {}, nil)
      end
    elseif system == "etcd" then
      local hdr = { ["Content-Type"] = "application/json" }
      if op == "put" then
        r = wrk.format("POST", "/v3/kv/put", hdr, '{"key":"' .. base64(key) .. '","value":"' .. vb64 .. '"}')
      elseif op == "sget" then
        r = wrk.format("POST", "/v3/kv/range", hdr, '{"key":"' .. base64(key) .. '","serializable":true}')
      else
        r = wrk.format("POST", "/v3/kv/range", hdr, '{"key":"' .. base64(key) .. '"}')
      end
    else
      error("BENCH_SYSTEM must be gossamer or etcd, not " .. tostring(system))
    end
    requests[k] = r
  end
  -- Spread the threads over the key space (thread 1 starts at key 1, thread 2 at key 1 + N/2, ...).
  counter = ((id - 1) * math.floor(nkeys / 2)) % nkeys
end

function request()
  counter = counter + 1
  if counter > nkeys then counter = 1 end
  return requests[counter]
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
