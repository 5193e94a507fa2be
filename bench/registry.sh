#!/usr/bin/env bash
# The service registry on this machine: how fast a registration reaches Redis and every agent, lookups over HTTP,
# and lookups from the Redis cache through our own client against redis-benchmark.
#
#   bash bench/registry.sh                                   # RUNS=3 DURATION=10: about 4 minutes + build
#   DURATION=3 RUNS=1 RATE=200 bash bench/registry.sh         # quick look, about a minute
#   GOSSAMER_BIN=/path/to/gossamer REDISBENCH_BIN=/path/to/RedisBench bash bench/registry.sh   # skip the builds
#
# Installs wrk, redis-server and redis-tools with apt if missing, builds Gossamer and Benchmarks/RedisBench in
# release (unless GOSSAMER_BIN / REDISBENCH_BIN are set), then runs bench/lib/registrybench.py: its own
# redis-server on a free loopback port (temp dir, no persistence), 3 agents with --redis and the local gossip
# profile, SERVICES x INSTANCES registrations at RATE/s round-robin over the agents (latency until the PUBLISH
# reaches a PSUBSCRIBE connection, and until an SSE watch on every agent has the key), wrk lookups
# (bench/lib/registry.lua) against one agent, and HGETALL lookups through RedisCache.RedisClient (RedisBench)
# against redis-benchmark on the same keys, RUNS times each, interleaved. Prints one table with the goals marked
# MET / NOT MET. All traffic stays on 127.0.0.1; every wait is capped; everything started is stopped by PID on
# exit. See bench/README.md, section "Registry", for each figure and the knobs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

SERVICES=${SERVICES:-50}
INSTANCES=${INSTANCES:-20}
RATE=${RATE:-100}
SENDERS=${SENDERS:-16}
GRACE=${GRACE:-10}
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-64}
THREADS=${THREADS:-2}
PIPELINE=${PIPELINE:-16}
REDIS_CONNECTIONS=${REDIS_CONNECTIONS:-8}
WARMUP=${WARMUP:-2}
PAUSE=${PAUSE:-1}
POLL_MS=${POLL_MS:-50}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
SEED=${SEED:-1}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out/registry-$(date +%Y%m%d-%H%M%S)}

say() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'registry.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/common.sh
source "$LIB/common.sh"
int_in SERVICES "$SERVICES" 1 10000
int_in INSTANCES "$INSTANCES" 1 1000
int_in RATE "$RATE" 1 2000
int_in SENDERS "$SENDERS" 1 64
int_in GRACE "$GRACE" 1 300
int_in DURATION "$DURATION" 1 300
int_in RUNS "$RUNS" 1 20
int_in CONCURRENCY "$CONCURRENCY" 1 1024
int_in THREADS "$THREADS" 1 16
int_in PIPELINE "$PIPELINE" 1 1024
int_in REDIS_CONNECTIONS "$REDIS_CONNECTIONS" 1 256
int_in WARMUP "$WARMUP" 0 60
int_in PAUSE "$PAUSE" 0 30
int_in POLL_MS "$POLL_MS" 10 1000
int_in WAIT_TIMEOUT "$WAIT_TIMEOUT" 5 600
int_in SEED "$SEED" 0 1000000
((SERVICES * INSTANCES <= 100000)) || die "SERVICES x INSTANCES must be at most 100000, not $((SERVICES * INSTANCES))"

# The exact command, with every knob that was set in the environment.
CMD="$(knobs_set SERVICES INSTANCES RATE SENDERS GRACE DURATION RUNS CONCURRENCY THREADS PIPELINE REDIS_CONNECTIONS \
  WARMUP PAUSE POLL_MS WAIT_TIMEOUT SEED GOSSAMER_BIN REDISBENCH_BIN OUT_DIR)bash bench/registry.sh"

# --- 1. Tools -----------------------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
command -v python3 >/dev/null 2>&1 || need+=(python3)
install_debs "${need[@]}"

# --- 2. Binaries --------------------------------------------------------------------------------------------
BIN=$(gossamer_bin)
HELP=$("$BIN" agent --help 2>&1 || true)
grep -q -- --redis <<<"$HELP" || die "$BIN has no 'agent --redis': no registry cache to measure"
grep -q -- --gossip-profile <<<"$HELP" || die "$BIN has no 'agent --gossip-profile'"
RBIN=$(release_bin RedisBench REDISBENCH_BIN)

# --- 3. Run -------------------------------------------------------------------------------------------------
driver_prepare regbench '(^|/)(gossamer agent|wrk|redis-server|redis-benchmark|RedisBench) '

GVER=$("$BIN" --version 2>/dev/null | head -1 || true)
WVER=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)
RVER=$(redis-server --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p' || true)
say "SERVICES=$SERVICES INSTANCES=$INSTANCES RATE=$RATE DURATION=$DURATION RUNS=$RUNS; raw output in $OUT_DIR"
run_driver python3 "$LIB/registrybench.py" --gossamer-bin "$BIN" --redisbench-bin "$RBIN" --services "$SERVICES" \
  --instances "$INSTANCES" --rate "$RATE" --senders "$SENDERS" --grace "$GRACE" --duration "$DURATION" --runs "$RUNS" \
  --concurrency "$CONCURRENCY" --threads "$THREADS" --pipeline "$PIPELINE" --redis-connections "$REDIS_CONNECTIONS" \
  --warmup "$WARMUP" --pause "$PAUSE" --poll-ms "$POLL_MS" --wait-timeout "$WAIT_TIMEOUT" --seed "$SEED" \
  --out-dir "$OUT_DIR" --pidfile "$PIDFILE" --tmp "$WORK" \
  --meta "command=$CMD" \
  --meta "versions=gossamer $GVER ($BIN), RedisBench ($RBIN), redis $RVER, wrk $WVER, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work"
