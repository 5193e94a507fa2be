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
local base_seed = tonumber(os.getenv("BENCH_SEED") or "1")
local started = 0
local prebuilt = {}

-- Each thread gets a seed of its own, so the threads do not send the same sequence of services.
function setup(thread)
  started = started + 1
  thread:set("seed", base_seed + started)
end

function init(args)
  math.randomseed(tonumber(wrk.thread:get("seed")))
  for n = 1, nservices do
    prebuilt[n] = wrk.format("GET", string.format("/v1/services/svc-%012d?passing", n - 1))
  end
end

function request()
  return prebuilt[math.random(nservices)]
end
