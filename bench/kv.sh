#!/usr/bin/env bash
# Gossamer's KV API side by side with etcd 3.4 on this machine, in one go.
#
#   bash bench/kv.sh                      # RUNS=3 DURATION=10: about 9 minutes
#   RUNS=1 DURATION=3 bash bench/kv.sh    # quick look
#
# Installs etcd and wrk with apt if missing, builds Gossamer in release (unless GOSSAMER_BIN is set), starts one
# Gossamer agent and one single-member etcd in temp dirs on free loopback ports, loads both with wrk
# (puts, linearizable gets, etcd serializable gets), measures watch latency with bench/lib/watchlat.py,
# and prints a table with medians and ratios. Runs are interleaved (gossamer, etcd, gossamer, etcd, ...; the
# first system alternates from run to run). All traffic stays on 127.0.0.1; every load loop is bounded in
# count and time. See bench/README.md for what each figure means and the env knobs.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
THREADS=${THREADS:-2}
KEYS=${KEYS:-1000}
VALUE_SIZE=${VALUE_SIZE:-256}
WARMUP=${WARMUP:-2}
PAUSE=${PAUSE:-1}
SERIALIZABLE_C=${SERIALIZABLE_C:-64}
WATCHERS=${WATCHERS:-"1 16"}
WATCH_EVENTS=${WATCH_EVENTS:-500}
WATCH_INTERVAL_MS=${WATCH_INTERVAL_MS:-5}
OUT_DIR=${OUT_DIR:-$ROOT/bench/out/kv-$(date +%Y%m%d-%H%M%S)}

say() { printf '==> [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'kv.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib/common.sh
source "$LIB/common.sh"
int_in RUNS "$RUNS" 1 20
int_in DURATION "$DURATION" 1 300
int_in THREADS "$THREADS" 1 16
int_in KEYS "$KEYS" 1 100000
int_in VALUE_SIZE "$VALUE_SIZE" 32 65536
int_in WARMUP "$WARMUP" 0 60
int_in PAUSE "$PAUSE" 0 30
int_in SERIALIZABLE_C "$SERIALIZABLE_C" 0 1024
int_in WATCH_EVENTS "$WATCH_EVENTS" 1 100000
int_in WATCH_INTERVAL_MS "$WATCH_INTERVAL_MS" 1 1000
for c in $CONCURRENCY; do int_in CONCURRENCY "$c" 1 1024; done
for w in $WATCHERS; do int_in WATCHERS "$w" 1 256; done

# The exact command, with every knob that was set in the environment.
CMD="$(knobs_set RUNS DURATION CONCURRENCY THREADS KEYS VALUE_SIZE WARMUP PAUSE SERIALIZABLE_C WATCHERS WATCH_EVENTS \
  WATCH_INTERVAL_MS GOSSAMER_BIN OUT_DIR)bash bench/kv.sh"
[[ $CMD == *RUNS=* ]] || CMD="RUNS=$RUNS $CMD"
[[ $CMD == *DURATION=* ]] || CMD="DURATION=$DURATION $CMD"

# --- 1. Tools -----------------------------------------------------------------------------------------------
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v python3 >/dev/null 2>&1 || need+=(python3)
install_debs "${need[@]}"

# --- 2. Gossamer binary -------------------------------------------------------------------------------------
BIN=$(gossamer_bin)

mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results.txt
: >"$RESULTS"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gossamer-kvbench.XXXXXX")
GOSSAMER_PID=""
ETCD_PID=""

stop_pid() { # pid name
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$2 (pid $pid) did not stop within 5 s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((rc != 0)) && [[ -s ${RESULTS:-} ]] && grep -q '^WRK ' "$RESULTS"; then
    echo "META load_after $(loadavg) (run aborted)" >>"$RESULTS"
    printf '\nPARTIAL RESULTS (the run was aborted, exit %d):\n' "$rc" >&2
    python3 "$LIB/report.py" "$RESULTS" >&2 || true
  fi
  stop_pid "$GOSSAMER_PID" gossamer
  stop_pid "$ETCD_PID" etcd
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_BEFORE=$(loadavg)

# --- 3. Servers ---------------------------------------------------------------------------------------------
say "starting gossamer agent ($BIN)"
"$BIN" agent --node-name bench --data-dir "$WORK/gossamer" --http 127.0.0.1:0 \
  >"$WORK/gossamer.out" 2>"$OUT_DIR/gossamer.log" &
GOSSAMER_PID=$!
GURL=""
for ((i = 0; i < 300; i++)); do
  GURL=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$WORK/gossamer.out" 2>/dev/null | head -1 | sed 's/^listening on //' || true)
  [[ -n $GURL ]] && break
  kill -0 "$GOSSAMER_PID" 2>/dev/null || { cat "$WORK/gossamer.out" "$OUT_DIR/gossamer.log" >&2; die "gossamer agent exited"; }
  sleep 0.1
done
[[ -n $GURL ]] || die "gossamer agent did not say it was listening within 30 s"
cp "$WORK/gossamer.out" "$OUT_DIR/gossamer.out"

PORTS=$(python3 "$LIB/kvtool.py" freeport 2)
EPORT=$(sed -n 1p <<<"$PORTS")
PPORT=$(sed -n 2p <<<"$PORTS")
EURL=http://127.0.0.1:$EPORT
say "starting etcd on $EURL"
etcd --name bench --data-dir "$WORK/etcd" \
  --listen-client-urls "$EURL" --advertise-client-urls "$EURL" \
  --listen-peer-urls "http://127.0.0.1:$PPORT" --initial-advertise-peer-urls "http://127.0.0.1:$PPORT" \
  --initial-cluster "bench=http://127.0.0.1:$PPORT" --initial-cluster-state new --logger zap \
  >"$OUT_DIR/etcd.log" 2>&1 &
ETCD_PID=$!
python3 "$LIB/kvtool.py" wait-etcd "$EURL" 30 || { tail -20 "$OUT_DIR/etcd.log" >&2; die "etcd did not become healthy"; }

GVER=$("$BIN" --version 2>/dev/null | head -1 || true)
EVER=$(etcd --version 2>/dev/null | head -1 | sed 's/^etcd Version: //' || true)
WVER=$(wrk --version 2>&1 | head -1 | awk '{print $2}' || true)
{
  echo "META date $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "META runs $RUNS"
  echo "META duration $DURATION"
  echo "META versions gossamer $GVER ($BIN), etcd $EVER, wrk $WVER, $(nproc) cores"
  echo "META command $CMD"
  echo "META load_before $LOAD_BEFORE"
} >>"$RESULTS"
say "gossamer at $GURL, etcd at $EURL; raw output in $OUT_DIR"

url_of() { if [[ $1 == gossamer ]]; then echo "$GURL"; else echo "$EURL"; fi; }
pid_of() { if [[ $1 == gossamer ]]; then echo "$GOSSAMER_PID"; else echo "$ETCD_PID"; fi; }

# ensure_up system: stop with a clear message if a server died or stopped listening (e.g. someone sent it
# SIGTERM: the agent then closes its listener but, as of 0.1.0, does not exit).
ensure_up() {
  local pid st
  pid=$(pid_of "$1")
  python3 "$LIB/kvtool.py" ping "$1" "$(url_of "$1")" && return 0
  say "$1 stopped answering; process list: $(ps -o pid=,stat=,etime= -p "$pid" 2>/dev/null || echo 'gone')"
  if kill -0 "$pid" 2>/dev/null; then
    sleep 3
    kill -0 "$pid" 2>/dev/null || { wait "$pid" && st=0 || st=$?; die "$1 (pid $pid) stopped listening, then exited with status $st; logs in $OUT_DIR"; }
    die "$1 (pid $pid) is still running but no longer answers on $(url_of "$1"): was it sent SIGTERM/SIGINT by someone else? Logs in $OUT_DIR"
  fi
  wait "$pid" && st=0 || st=$?
  die "$1 (pid $pid) has exited with status $st; logs in $OUT_DIR"
}

# wrk_once system op conc seconds outfile: one bounded wrk run.
wrk_once() {
  local system=$1 op=$2 c=$3 secs=$4 out=$5 t=$THREADS
  ((c < t)) && t=$c # wrk needs at least one connection per thread
  BENCH_SYSTEM=$system BENCH_OP=$op BENCH_KEYS=$KEYS BENCH_VALUE=$VALUE_SIZE \
    timeout -k 5 $((secs + 60)) wrk -t"$t" -c"$c" -d"${secs}s" --timeout 5s --latency -s "$LIB/kv.lua" \
    "$(url_of "$system")" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed ($system $op c=$c)"; }
}

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

run_wrk() { # system op conc run
  local system=$1 op=$2 c=$3 run=$4 out line rev0=0 rev1 req
  out=$OUT_DIR/wrk-$system-$op-c$c-run$run.txt
  ensure_up "$system"
  [[ $op == put ]] && rev0=$(python3 "$LIB/kvtool.py" revision "$system" "$(url_of "$system")")
  wrk_once "$system" "$op" "$c" "$DURATION" "$out"
  line=$(grep '^WRKRESULT' "$out" || true)
  [[ -n $line ]] || { cat "$out" >&2; die "no WRKRESULT line from wrk ($system $op c=$c)"; }
  echo "WRK $system $op $c $run $line" >>"$RESULTS"
  ensure_up "$system"
  req=$(field requests "$line")
  if [[ $op == put ]]; then
    rev1=$(python3 "$LIB/kvtool.py" revision "$system" "$(url_of "$system")")
    echo "CHECK $system $op $c $run requests=$req committed=$((rev1 - rev0))" >>"$RESULTS"
  fi
  local errs
  errs=$(($(field non2xx "$line") + $(field connect "$line") + $(field read "$line") + $(field write "$line") + $(field timeout "$line")))
  printf '    %s run %d/%d  %-8s %-4s c=%-3d %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms%s\n' "$(date +%T)" "$run" "$RUNS" "$system" "$op" "$c" \
    "$(field rps "$line")" "$(awk "BEGIN{print $(field p50_us "$line")/1000}")" \
    "$(awk "BEGIN{print $(field p99_us "$line")/1000}")" "$( ((errs)) && echo "  ERRORS: $errs (non-2xx $(field non2xx "$line"))")" >&2
  sleep "$PAUSE"
}

run_watch() { # system watchers run
  local system=$1 w=$2 run=$3 json
  ensure_up "$system"
  json=$(timeout -k 5 $((WATCH_EVENTS * WATCH_INTERVAL_MS / 1000 + 120)) python3 "$LIB/watchlat.py" --system "$system" \
    --url "$(url_of "$system")" --watchers "$w" --events "$WATCH_EVENTS" --interval-ms "$WATCH_INTERVAL_MS" \
    --value-size "$VALUE_SIZE" --timeout $((WATCH_EVENTS * WATCH_INTERVAL_MS / 1000 + 60))) ||
    { ensure_up "$system"; die "watch latency client failed ($system, $w watchers)"; }
  echo "WATCH $run $json" >>"$RESULTS"
  echo "$json" >"$OUT_DIR/watch-$system-w$w-run$run.json"
  python3 -c 'import json, sys, time
d = json.loads(sys.argv[1])
err = "  ERRORS: %s" % d["errors"][:2] if d["errors"] else ""
print("    %s run %s/%s  %-8s watch w=%-3s p50 %s ms  p99 %s ms  missed %s%s" % (time.strftime("%H:%M:%S"), sys.argv[2], sys.argv[3], d["system"], d["watchers"], d["p50_ms"], d["p99_ms"], d["missed"], err))' "$json" "$run" "$RUNS" >&2
}

# --- 4. Load ------------------------------------------------------------------------------------------------
say "preloading $KEYS keys of $VALUE_SIZE bytes into both"
python3 "$LIB/kvtool.py" preload gossamer "$GURL" "$KEYS" "$VALUE_SIZE"
python3 "$LIB/kvtool.py" preload etcd "$EURL" "$KEYS" "$VALUE_SIZE"

if ((WARMUP > 0)); then
  say "warm-up (${WARMUP} s of puts and gets each, c=16, not counted)"
  for system in gossamer etcd; do
    wrk_once "$system" put 16 "$WARMUP" "$OUT_DIR/warmup-$system-put.txt"
    wrk_once "$system" get 16 "$WARMUP" "$OUT_DIR/warmup-$system-get.txt"
  done
  sleep "$PAUSE"
fi

for ((run = 1; run <= RUNS; run++)); do
  if ((run % 2)); then order="gossamer etcd"; else order="etcd gossamer"; fi
  say "run $run of $RUNS (load average $(loadavg))"
  for op in put get; do
    for c in $CONCURRENCY; do
      for system in $order; do run_wrk "$system" "$op" "$c" "$run"; done
    done
  done
  if ((SERIALIZABLE_C > 0)); then run_wrk etcd sget "$SERIALIZABLE_C" "$run"; fi
  for w in $WATCHERS; do
    for system in $order; do run_watch "$system" "$w" "$run"; done
  done
done

LOAD_AFTER=$(loadavg)
echo "META load_after $LOAD_AFTER" >>"$RESULTS"

# --- 5. Table -----------------------------------------------------------------------------------------------
echo
python3 "$LIB/report.py" "$RESULTS" | tee "$OUT_DIR/table.md"
echo
echo "Raw output: $OUT_DIR"
