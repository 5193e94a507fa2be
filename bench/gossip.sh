#!/usr/bin/env bash
# Gossamer's gossip membership side by side with HashiCorp Serf (memberlist LAN defaults) on this machine.
#
#   bash bench/gossip.sh                          # SIZES="8 32 64" RUNS=3, then the simulator table: ~11 minutes
#   SIZES=8 RUNS=1 SKIP_SIM=1 bash bench/gossip.sh # quick look (under a minute)
#
# Installs Serf with apt if missing, builds Gossamer in release (unless GOSSAMER_BIN is set), then for every N and
# run starts N agents of each system on loopback (interleaved: the first system alternates from run to run) and
# measures join, kill -9 detection, graceful leave and idle cost with bench/lib/gossip_bench.py. Finally it prints
# the SWIM simulator's table (Benchmarks/SimBench). See bench/README.md, section "Gossip", for what each figure
# means. All traffic stays on 127.0.0.1; every wait is capped; everything started is stopped by PID on exit.
#
# Environment:
#   SIZES="8 32 64"      cluster sizes
#   RUNS=3               runs per size and system (medians are reported)
#   SYSTEMS="gossamer serf"
#   GOSSAMER_BIN=...     use this gossamer binary instead of building one
#   PORT_BASE=20000      Serf gossip +i, Serf RPC +1000+i, Gossamer HTTP +2000+i, Gossamer gossip +3000+i
#   POLL_MS=50 WAIT_TIMEOUT=60 IDLE=10 IDLE_SETTLE=3
#   NETNS=1              run the agents in a network namespace of their own (0: the host's)
#   SKIP_SIM=1           skip the simulator table; SIM_MAX=10000 adds N=10,000 to it (~10 GB, many minutes)
#   OUT_DIR=bench/out/gossip-<date>   raw results (results.json, summary.md, sim.md, logs of anomalous runs)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

SIZES=${SIZES:-"8 32 64"}
RUNS=${RUNS:-3}
SYSTEMS=${SYSTEMS:-"gossamer serf"}
PORT_BASE=${PORT_BASE:-20000}
POLL_MS=${POLL_MS:-50}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-60}
IDLE=${IDLE:-10}
IDLE_SETTLE=${IDLE_SETTLE:-3}
SKIP_SIM=${SKIP_SIM:-0}
SIM_MAX=${SIM_MAX:-1000}
NETNS=${NETNS:-1}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out/gossip-$(date +%Y%m%d-%H%M%S)}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'gossip.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/common.sh
source "$LIB/common.sh"
int_in RUNS "$RUNS" 1 20
int_in PORT_BASE "$PORT_BASE" 1024 28000
int_in POLL_MS "$POLL_MS" 10 1000
int_in WAIT_TIMEOUT "$WAIT_TIMEOUT" 5 600
int_in IDLE "$IDLE" 1 300
int_in IDLE_SETTLE "$IDLE_SETTLE" 0 60
int_in SIM_MAX "$SIM_MAX" 100 10000
int_in NETNS "$NETNS" 0 1
for n in $SIZES; do int_in SIZES "$n" 4 700; done
for s in $SYSTEMS; do [[ $s == gossamer || $s == serf ]] || die "SYSTEMS may hold gossamer and serf, not '$s'"; done

# --- 1. Tools -----------------------------------------------------------------------------------------------
need=()
[[ " $SYSTEMS " == *" serf "* ]] && ! command -v serf >/dev/null 2>&1 && need+=(serf)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[[ $NETNS == 1 ]] && ! command -v ip >/dev/null 2>&1 && need+=(iproute2)
# The Debian serf package enables a serf.service; policy-rc.d/containers usually keep it from starting, and the
# benchmark never uses it (its agents get their own ports and no config dir).
install_debs "${need[@]}"

# --- 2. Gossamer binary -------------------------------------------------------------------------------------
BIN=""
if [[ " $SYSTEMS " == *" gossamer "* ]]; then
  BIN=$(gossamer_bin)
  if ! "$BIN" agent --help 2>&1 | grep -q -- --gossip; then
    say "WARNING: $BIN has no 'agent --gossip' flag yet: measuring Serf only"
    SYSTEMS=$(sed 's/gossamer//' <<<"$SYSTEMS")
  fi
fi
[[ -n ${SYSTEMS// /} ]] || die "nothing to measure"

# --- 3. Cluster runs ----------------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gossamer-gossipbench.XXXXXX")
PIDFILE=$WORK/pids
: >"$PIDFILE"
DRIVER_PID=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_driver "$DRIVER_PID" 50
  # Every agent and leave command the driver started, by PID (only if it is still one of ours).
  kill_listed "$PIDFILE" '(^|/)(serf|gossamer) '
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

META=(--meta "command=SIZES=\"$SIZES\" RUNS=$RUNS SYSTEMS=\"$SYSTEMS\" bash bench/gossip.sh"
  --meta "machine=$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work")
if [[ " $SYSTEMS " == *" serf "* ]]; then
  META+=(--meta "serf=$(dpkg-query -W -f='${Version}' serf 2>/dev/null || serf version | head -1) ($(command -v serf))")
fi
if [[ -n $BIN && " $SYSTEMS " == *" gossamer "* ]]; then
  META+=(--meta "gossamer=$("$BIN" --version 2>/dev/null | head -1) ($BIN)")
fi

# A network namespace of our own (loopback only) keeps /proc/net/snmp's UDP counters to our agents' traffic.
RUNNER=()
if [[ $NETNS == 1 ]] && unshare -n sh -c 'ip link set lo up' 2>/dev/null; then
  RUNNER=(unshare -n sh -c 'ip link set lo up && exec "$@"' sh)
  META+=(--meta "network=own network namespace (unshare -n, loopback only): UDP counters see only the agents")
else
  [[ $NETNS == 1 ]] && say "WARNING: cannot create a network namespace (unshare -n); using the host's"
  META+=(--meta "network=host network namespace: UDP counters include other work's datagrams (background rate subtracted)")
fi

say "cluster runs: SIZES=\"$SIZES\" RUNS=$RUNS SYSTEMS=\"$SYSTEMS\"; raw results in $OUT_DIR"
set +e
"${RUNNER[@]}" python3 "$LIB/gossip_bench.py" --sizes "$SIZES" --runs "$RUNS" --systems "$SYSTEMS" \
  --gossamer-bin "${BIN:-gossamer}" --serf-bin "$(command -v serf || echo serf)" --port-base "$PORT_BASE" \
  --poll-ms "$POLL_MS" --wait-timeout "$WAIT_TIMEOUT" --idle "$IDLE" --idle-settle "$IDLE_SETTLE" \
  --out-dir "$OUT_DIR" --pidfile "$PIDFILE" --tmp "$WORK" "${META[@]}" &
DRIVER_PID=$!
wait "$DRIVER_PID"
DRIVER_RC=$?
DRIVER_PID=""
set -e

# --- 4. Simulator table -------------------------------------------------------------------------------------
if [[ $SKIP_SIM == 1 ]]; then
  say "SKIP_SIM=1: no simulator table"
elif ! command -v swift >/dev/null 2>&1; then
  say "swift not found: no simulator table"
elif ! grep -q '"SimBench"' "$ROOT/Package.swift"; then
  say "Package.swift has no SimBench target yet: no simulator table"
else
  say "simulator table (SIM_MAX=$SIM_MAX; building SimBench in release)"
  simbench=$(release_bin SimBench SIMBENCH_BIN)
  echo
  SIM_MAX=$SIM_MAX "$simbench" | tee "$OUT_DIR/sim.md"
fi
exit "$DRIVER_RC"
