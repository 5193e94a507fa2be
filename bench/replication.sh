#!/usr/bin/env bash
# Replication between Gossamer agents on this machine: write-to-everywhere latency, bytes per write, repair of a
# stopped agent, and put throughput with replication on vs off.
#
#   bash bench/replication.sh                                              # SIZES="3 5 16": about 4 minutes + build
#   SIZES=3 WRITES=100 REPAIR_KEYS=1000 DURATION=3 bash bench/replication.sh  # quick look, about 1 minute
#   GOSSAMER_BIN=/path/to/gossamer bash bench/replication.sh              # skip the build
#
# Installs wrk with apt if missing, builds Gossamer in release (unless GOSSAMER_BIN is set), then for every N
# starts N agents on free loopback ports and runs bench/lib/replbench.py: an SSE watch on every agent while
# WRITES puts at RATE/s go to random agents (latency until the event arrived everywhere; replication and gossip
# bytes per write per agent), then SIGTERM of one agent, REPAIR_KEYS keys written to the others, its restart on
# the same data dir and the time until it holds the same keys and root digest. Finally wrk (bench/lib/kv.lua)
# puts against a lone agent (no --gossip) and against an agent of a 3-agent cluster, interleaved. Prints one
# table with the goals marked MET / NOT MET. All traffic stays on 127.0.0.1; every wait is capped; everything
# started is stopped by PID on exit. See bench/README.md, section "Replication", for each figure and the knobs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

SIZES=${SIZES:-"3 5 16"}
WRITES=${WRITES:-500}
RATE=${RATE:-100}
VALUE_SIZE=${VALUE_SIZE:-256}
REPAIR_KEYS=${REPAIR_KEYS:-10000}
REPAIR_CONCURRENCY=${REPAIR_CONCURRENCY:-16}
REPAIR_TIMEOUT=${REPAIR_TIMEOUT:-120}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
THREADS=${THREADS:-2}
THROUGHPUT_RUNS=${THROUGHPUT_RUNS:-3}
KEYS=${KEYS:-1000}
WARMUP=${WARMUP:-2}
PAUSE=${PAUSE:-1}
IDLE=${IDLE:-3}
GRACE=${GRACE:-10}
POLL_MS=${POLL_MS:-50}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
SEED=${SEED:-1}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out/replication-$(date +%Y%m%d-%H%M%S)}

say() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'replication.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/common.sh
source "$LIB/common.sh"
[[ -n ${SIZES// /} ]] || die "SIZES must list at least one cluster size"
for n in $SIZES; do int_in SIZES "$n" 2 64; done
int_in WRITES "$WRITES" 1 100000
int_in RATE "$RATE" 1 2000
int_in VALUE_SIZE "$VALUE_SIZE" 32 65536
int_in REPAIR_KEYS "$REPAIR_KEYS" 0 1000000
int_in REPAIR_CONCURRENCY "$REPAIR_CONCURRENCY" 1 256
int_in REPAIR_TIMEOUT "$REPAIR_TIMEOUT" 5 3600
int_in DURATION "$DURATION" 1 300
int_in CONCURRENCY "$CONCURRENCY" 1 1024
int_in THREADS "$THREADS" 1 16
int_in THROUGHPUT_RUNS "$THROUGHPUT_RUNS" 0 20
int_in KEYS "$KEYS" 1 100000
int_in WARMUP "$WARMUP" 0 60
int_in PAUSE "$PAUSE" 0 30
int_in IDLE "$IDLE" 1 60
int_in GRACE "$GRACE" 1 300
int_in POLL_MS "$POLL_MS" 10 1000
int_in WAIT_TIMEOUT "$WAIT_TIMEOUT" 5 600
int_in SEED "$SEED" 0 1000000

# The exact command, with every knob that was set in the environment.
CMD="$(knobs_set SIZES WRITES RATE VALUE_SIZE REPAIR_KEYS REPAIR_CONCURRENCY REPAIR_TIMEOUT DURATION CONCURRENCY \
  THREADS THROUGHPUT_RUNS KEYS WARMUP PAUSE IDLE GRACE POLL_MS WAIT_TIMEOUT SEED GOSSAMER_BIN OUT_DIR)bash bench/replication.sh"

# --- 1. Tools -----------------------------------------------------------------------------------------------
need=()
((THROUGHPUT_RUNS > 0)) && ! command -v wrk >/dev/null 2>&1 && need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
install_debs "${need[@]}"

# --- 2. Gossamer binary -------------------------------------------------------------------------------------
BIN=$(gossamer_bin)
HELP=$("$BIN" agent --help 2>&1 || true)
grep -q -- --gossip <<<"$HELP" || die "$BIN has no 'agent --gossip': nothing to replicate"

# --- 3. Runs ------------------------------------------------------------------------------------------------
driver_prepare replbench '(^|/)(gossamer agent|wrk) '

GVER=$("$BIN" --version 2>/dev/null | head -1 || true)
WVER="not used"
if ((THROUGHPUT_RUNS > 0)); then WVER=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true); fi
say "SIZES=\"$SIZES\" WRITES=$WRITES RATE=$RATE REPAIR_KEYS=$REPAIR_KEYS DURATION=$DURATION; raw output in $OUT_DIR"
run_driver python3 "$LIB/replbench.py" --gossamer-bin "$BIN" --sizes "$SIZES" --writes "$WRITES" --rate "$RATE" \
  --value-size "$VALUE_SIZE" --repair-keys "$REPAIR_KEYS" --repair-concurrency "$REPAIR_CONCURRENCY" \
  --repair-timeout "$REPAIR_TIMEOUT" --duration "$DURATION" --concurrency "$CONCURRENCY" --threads "$THREADS" \
  --throughput-runs "$THROUGHPUT_RUNS" --keys "$KEYS" --warmup "$WARMUP" --pause "$PAUSE" --idle "$IDLE" \
  --grace "$GRACE" --poll-ms "$POLL_MS" --wait-timeout "$WAIT_TIMEOUT" --seed "$SEED" \
  --out-dir "$OUT_DIR" --pidfile "$PIDFILE" --tmp "$WORK" \
  --meta "command=$CMD" \
  --meta "versions=gossamer $GVER ($BIN), wrk $WVER, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work"
