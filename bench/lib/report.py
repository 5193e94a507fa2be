#!/usr/bin/env python3
"""Turn bench/kv.sh's raw results into the side-by-side table (Python 3 standard library only).

  report.py RESULTS_FILE

RESULTS_FILE lines (written by bench/kv.sh):
  WRK <system> <op> <concurrency> <run> WRKRESULT requests=.. rps=.. p50_us=.. p99_us=.. non2xx=.. ...
  CHECK <system> <op> <concurrency> <run> requests=<n> committed=<revision delta>
  WATCH <run> {json from watchlat.py}
  META <key> <value...>        (date, runs, duration, load_before, load_after, command, host, versions)

Medians over the runs are shown; ratios are gossamer / etcd. Exit status is 0 whatever the figures
(the table says whether each goal was met).
"""

import json
import statistics
import sys
from collections import defaultdict


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(g, e):
    if g is None or e is None or e == 0:
        return None
    return g / e


def main(path):
    wrk = defaultdict(list)      # (system, op, conc) -> [dict]
    checks = []                  # (system, op, conc, run, requests, committed)
    watch = defaultdict(list)    # (system, watchers) -> [dict]
    meta = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(" ")
            if not parts or not parts[0]:
                continue
            if parts[0] == "WRK":
                system, op, conc, run = parts[1], parts[2], int(parts[3]), int(parts[4])
                d = {}
                for kv in parts[6:]:
                    if "=" in kv:
                        k, v = kv.split("=", 1)
                        d[k] = float(v)
                d["run"] = run
                wrk[(system, op, conc)].append(d)
            elif parts[0] == "CHECK":
                d = dict(kv.split("=", 1) for kv in parts[5:])
                checks.append((parts[1], parts[2], int(parts[3]), int(parts[4]),
                               int(d["requests"]), int(d["committed"])))
            elif parts[0] == "WATCH":
                d = json.loads(" ".join(parts[2:]))
                d["run"] = int(parts[1])
                watch[(d["system"], d["watchers"])].append(d)
            elif parts[0] == "META":
                meta[parts[1]] = " ".join(parts[2:])

    rows = []   # (metric, g, e, ratio, fmt digits)
    concs = sorted({k[2] for k in wrk})

    def wrk_med(system, op, conc, field):
        return med([d.get(field) for d in wrk.get((system, op, conc), [])])

    for op, label in (("put", "put"), ("get", "get (etcd linearizable)")):
        for c in concs:
            g = wrk_med("gossamer", op, c, "rps")
            e = wrk_med("etcd", op, c, "rps")
            if g is None and e is None:
                continue
            rows.append((f"{label} c={c}: req/s (higher is better)", g, e, ratio(g, e), 0))
            for p in ("p50", "p99"):
                gp = wrk_med("gossamer", op, c, p + "_us")
                ep = wrk_med("etcd", op, c, p + "_us")
                gp = gp / 1000 if gp is not None else None
                ep = ep / 1000 if ep is not None else None
                rows.append((f"{label} c={c}: {p} ms (lower is better)", gp, ep, ratio(gp, ep), 2))
    sconc = sorted({k[2] for k in wrk if k[1] == "sget"})
    for c in sconc:
        g = wrk_med("gossamer", "get", c, "rps")
        e = wrk_med("etcd", "sget", c, "rps")
        rows.append((f"get c={c} vs etcd serializable: req/s (higher is better)", g, e, ratio(g, e), 0))
        gp = wrk_med("gossamer", "get", c, "p99_us")
        ep = wrk_med("etcd", "sget", c, "p99_us")
        gp = gp / 1000 if gp is not None else None
        ep = ep / 1000 if ep is not None else None
        rows.append((f"get c={c} vs etcd serializable: p99 ms (lower is better)", gp, ep, ratio(gp, ep), 2))
    for w in sorted({k[1] for k in watch}):
        for p in ("p50", "p99"):
            g = med([d.get(p + "_ms") for d in watch.get(("gossamer", w), [])])
            e = med([d.get(p + "_ms") for d in watch.get(("etcd", w), [])])
            rows.append((f"watch put->event, {w} watcher{'s' if w > 1 else ''}: {p} ms (lower is better)",
                         g, e, ratio(g, e), 2))
        gm = sum(d.get("missed", 0) for d in watch.get(("gossamer", w), []))
        em = sum(d.get("missed", 0) for d in watch.get(("etcd", w), []))
        rows.append((f"watch, {w} watcher{'s' if w > 1 else ''}: missed events, all runs (must be 0)",
                     gm, em, None, 0))

    def errs(system, op):
        total = 0
        for (s, o, c), ds in wrk.items():
            if s == system and o == op:
                for d in ds:
                    total += int(d.get("non2xx", 0))
        return total

    def sockerrs(system, op):
        total = 0
        for (s, o, c), ds in wrk.items():
            if s == system and o == op:
                for d in ds:
                    total += int(sum(d.get(k, 0) for k in ("connect", "read", "write", "timeout")))
        return total

    for op, label in (("put", "put"), ("get", "get"), ("sget", "serializable get")):
        if any(k[1] == op for k in wrk):
            g = errs("gossamer", op) if op != "sget" else None
            e = errs("etcd", op)
            rows.append((f"{label}: non-2xx responses, all runs (must be 0)", g, e, None, 0))
            g = sockerrs("gossamer", op) if op != "sget" else None
            e = sockerrs("etcd", op)
            rows.append((f"{label}: socket errors/timeouts, all runs (must be 0)", g, e, None, 0))

    # Table.
    header = ("metric", "gossamer", "etcd", "ratio g/e")
    body = [(m, fmt_num(g, d), fmt_num(e, d), "" if r is None else f"{r:.2f}x") for m, g, e, r, d in rows]
    widths = [max(len(x[i]) for x in [header] + body) for i in range(4)]
    out = []
    out.append("Gossamer vs etcd, KV API over HTTP on loopback (medians of %s runs, %s s each)"
               % (meta.get("runs", "?"), meta.get("duration", "?")))
    out.append("")
    line = lambda cells: "| " + " | ".join(
        c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)) + " |"
    out.append(line(header))
    out.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    for b in body:
        out.append(line(b))

    # Goals from the issue.
    out.append("")
    out.append("Goals:")

    def goal(text, value, ok):
        mark = "n/a" if ok is None else ("MET" if ok else "NOT MET")
        out.append(f"  - {text}: {value} -> {mark}")

    cmax = max(concs) if concs else 64
    r_put = ratio(wrk_med("gossamer", "put", cmax, "rps"), wrk_med("etcd", "put", cmax, "rps"))
    goal(f"puts/s >= 2x etcd at c={cmax}", "n/a" if r_put is None else f"{r_put:.2f}x",
         None if r_put is None else r_put >= 2)
    r_get = ratio(wrk_med("gossamer", "get", cmax, "rps"), wrk_med("etcd", "get", cmax, "rps"))
    goal(f"gets/s >= 3x etcd linearizable gets at c={cmax}", "n/a" if r_get is None else f"{r_get:.2f}x",
         None if r_get is None else r_get >= 3)
    for w in sorted({k[1] for k in watch}):
        g = med([d.get("p99_ms") for d in watch.get(("gossamer", w), [])])
        e = med([d.get("p99_ms") for d in watch.get(("etcd", w), [])])
        goal(f"watch p99 no worse than etcd's, {w} watcher{'s' if w > 1 else ''}",
             f"{fmt_num(g, 2)} ms vs {fmt_num(e, 2)} ms", None if g is None or e is None else g <= e)
    total_missed = sum(d.get("missed", 0) for ds in watch.values() for d in ds)
    total_err = sum(int(d.get(k, 0)) for ds in wrk.values() for d in ds
                    for k in ("non2xx", "connect", "read", "write", "timeout"))
    goal("no missed watch events, no non-2xx or socket errors", f"{total_missed} missed, {total_err} errors",
         total_missed == 0 and total_err == 0)

    # Per-run figures, to see the spread.
    out.append("")
    out.append("Per run (req/s; p99 ms):")
    for (s, o, c) in sorted(wrk, key=lambda k: (k[1], k[2], k[0])):
        ds = sorted(wrk[(s, o, c)], key=lambda d: d["run"])
        runs = ", ".join(f"{d['rps']:,.0f} ({d['p99_us'] / 1000:.1f})" for d in ds)
        out.append(f"  {o:4} c={c:<3} {s:9} {runs}")
    for (s, w) in sorted(watch, key=lambda k: (k[1], k[0])):
        ds = sorted(watch[(s, w)], key=lambda d: d["run"])
        runs = ", ".join(f"p50 {d['p50_ms']} / p99 {d['p99_ms']} ms" for d in ds)
        out.append(f"  watch w={w:<3} {s:9} {runs}")

    problems = []
    for (s, o, c), ds in sorted(wrk.items()):
        for d in ds:
            bad = {k: int(d.get(k, 0)) for k in ("non2xx", "connect", "read", "write", "timeout") if d.get(k)}
            if bad:
                problems.append(f"{s} {o} c={c} run {d['run']}: {bad}")
    for s, o, c, run, req, committed in checks:
        # Puts answered must all be committed; a put in flight when wrk stopped may add up to c more.
        if committed < req or committed > req + c + 1:
            problems.append(f"{s} {o} c={c} run {run}: wrk counted {req} responses but the revision moved by "
                            f"{committed}")
    for ds in watch.values():
        for d in ds:
            if d.get("missed") or d.get("errors"):
                problems.append(f"watch {d['system']} w={d['watchers']} run {d['run']}: missed {d.get('missed')}, "
                                f"errors {d.get('errors')[:3]}")
    if problems:
        out.append("")
        out.append("ERRORS / ANOMALIES:")
        out.extend("  - " + p for p in problems)
    else:
        out.append("")
        out.append("Checks: every put answered was committed (revision delta matches wrk's count); no errors.")

    out.append("")
    out.append(f"Load average before: {meta.get('load_before', '?')}")
    out.append(f"Load average after:  {meta.get('load_after', '?')}")
    for k in ("date", "versions", "command"):
        if k in meta:
            out.append(f"{k.capitalize()}: {meta[k]}")
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
