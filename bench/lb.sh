#!/usr/bin/env bash
# The load balancer on this machine: `gossamer lb` (each strategy) against nginx and haproxy in front of the same
# three nginx backends, and the picker micro-benchmark (Benchmarks/PickerBench).
#
#   bash bench/lb.sh                                        # RUNS=3 DURATION=10: about 6 minutes + build
#   DURATION=3 RUNS=1 bash bench/lb.sh                      # quick look, under 2 minutes
#   GOSSAMER_BIN=/path/to/gossamer PICKERBENCH_BIN=/path/to/PickerBench bash bench/lb.sh   # skip the builds
#
# Installs nginx, haproxy, wrk and python3 with apt if missing, builds Gossamer and Benchmarks/PickerBench in
# release (unless GOSSAMER_BIN / PICKERBENCH_BIN are set; SKIP_PICKER=1 skips PickerBench), then runs
# bench/lib/lbbench.py: PickerBench first, then one nginx master serving `return 200 "ok";` on three free loopback
# ports, nginx (upstream keepalive 64) and haproxy (roundrobin, leastconn; http-reuse always) in front of them,
# one agent holding the three backends as service `bench`, and one `gossamer lb --route /b/=bench` per strategy
# joined to it. wrk -c CONCURRENCY -d DURATION --latency goes through each setup (and to one backend directly),
# RUNS rounds, interleaved. Prints one report with the ratios to nginx and haproxy and the goals marked MET /
# NOT MET. All traffic stays on 127.0.0.1; every wait is capped; everything started is stopped by PID on exit
# (never by name: other nginx, haproxy or agents on this machine are left alone). See bench/README.md, section
# "Load balancer", for each figure and the knobs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONCURRENCY=${CONCURRENCY:-64}
THREADS=${THREADS:-2}
WARMUP=${WARMUP:-2}
PAUSE=${PAUSE:-1}
IDLE=${IDLE:-3}
BACKEND_WORKERS=${BACKEND_WORKERS:-1}
PROXY_WORKERS=${PROXY_WORKERS:-2}
WEIGHTS=${WEIGHTS:-"300 200 100"}
SKIP_PICKER=${SKIP_PICKER:-0}
POLL_MS=${POLL_MS:-50}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out/lb-$(date +%Y%m%d-%H%M%S)}

say() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'lb.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/common.sh
source "$LIB/common.sh"
int_in DURATION "$DURATION" 1 300
int_in RUNS "$RUNS" 1 20
int_in CONCURRENCY "$CONCURRENCY" 1 1024
int_in THREADS "$THREADS" 1 16
int_in WARMUP "$WARMUP" 0 60
int_in PAUSE "$PAUSE" 0 30
int_in IDLE "$IDLE" 1 60
int_in BACKEND_WORKERS "$BACKEND_WORKERS" 1 16
int_in PROXY_WORKERS "$PROXY_WORKERS" 1 16
int_in SKIP_PICKER "$SKIP_PICKER" 0 1
int_in POLL_MS "$POLL_MS" 10 1000
int_in WAIT_TIMEOUT "$WAIT_TIMEOUT" 5 600
read -r -a weights <<<"$WEIGHTS"
((${#weights[@]} == 3)) || die "WEIGHTS must list 3 weights (one per backend), not '$WEIGHTS'"
for w in "${weights[@]}"; do int_in WEIGHTS "$w" 1 1000; done

# The exact command, with every knob that was set in the environment.
CMD="$(knobs_set DURATION RUNS CONCURRENCY THREADS WARMUP PAUSE IDLE BACKEND_WORKERS PROXY_WORKERS WEIGHTS SKIP_PICKER \
  POLL_MS WAIT_TIMEOUT GOSSAMER_BIN PICKERBENCH_BIN OUT_DIR)bash bench/lb.sh"

# --- 1. Tools -----------------------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
install_debs "${need[@]}"

# --- 2. Binaries --------------------------------------------------------------------------------------------
BIN=$(gossamer_bin)
"$BIN" lb --help >/dev/null 2>&1 || die "$BIN has no 'lb' command: no load balancer to measure"
grep -q -- --gossip-profile <<<"$("$BIN" agent --help 2>&1 || true)" || die "$BIN has no 'agent --gossip-profile'"
PBIN=""
((SKIP_PICKER)) || PBIN=$(release_bin PickerBench PICKERBENCH_BIN)

# --- 3. Run -------------------------------------------------------------------------------------------------
driver_prepare lbbench '(^|/)(gossamer (agent|lb)|wrk|haproxy|PickerBench) |^nginx: (master|worker) process'

GVER=$("$BIN" --version 2>/dev/null | head -1 || true)
WVER=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)
NVER=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([^ ]*\).*|\1|p' || true)
HVER=$(haproxy -v 2>/dev/null | head -1 | awk '{print $3}' || true)
say "DURATION=$DURATION RUNS=$RUNS CONCURRENCY=$CONCURRENCY; raw output in $OUT_DIR"
run_driver python3 "$LIB/lbbench.py" --gossamer-bin "$BIN" --picker-bin "$PBIN" --weights "$WEIGHTS" \
  --duration "$DURATION" --runs "$RUNS" --concurrency "$CONCURRENCY" --threads "$THREADS" --warmup "$WARMUP" \
  --pause "$PAUSE" --idle "$IDLE" --backend-workers "$BACKEND_WORKERS" --proxy-workers "$PROXY_WORKERS" \
  --poll-ms "$POLL_MS" --wait-timeout "$WAIT_TIMEOUT" \
  --out-dir "$OUT_DIR" --pidfile "$PIDFILE" --tmp "$WORK" \
  --meta "command=$CMD" \
  --meta "versions=gossamer $GVER ($BIN), PickerBench (${PBIN:-skipped}), nginx $NVER, haproxy $HVER, wrk $WVER, $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work"
