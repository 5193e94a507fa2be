-- wrk script for bench/registry.sh: service lookups, GET /v1/services/svc-<12-digit n>?passing, with n drawn at
-- random from 0 .. BENCH_SERVICES-1 for every request (the services bench/lib/registrybench.py registers).
--
-- Environment (read in every thread):
--   BENCH_SERVICES  number of services (default 50)
--   BENCH_SEED      base of each thread's random seed (default 1; thread i uses BENCH_SEED + i)
--
-- Every request is built once in init() (one per service); request() only picks one, so wrk spends as little
-- CPU as possible (it shares the cores with the agents). The figures come from wrk's own --latency output,
-- which bench/lib/registrybench.py parses.

local nservices = tonumber(os.getenv("BENCH_SERVICES") or "50")
local seed = tonumber(os.getenv("BENCH_SEED") or "1")

local thread_id = 0
local requests = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end

function init(args)
  local id = tonumber(wrk.thread:get("id")) or 1
  math.randomseed(seed + id)
  for n = 0, nservices - 1 do
    requests[n + 1] = wrk.format("GET", string.format("/v1/services/svc-%012d?passing", n), {}, nil)
  end
end

function request()
  return requests[math.random(nservices)]
end
