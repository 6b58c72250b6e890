#!/usr/bin/env bash
# Group RPC side by side: `thoth-rpc-perf` (both drivers) and JGroups 2.12's RpcDispatcher
# (`jgroups-rpc.sh`), the same workload row by row, interleaved, repeated.
#
#   bins/jgroups/rpc-compare.sh [--rounds N] [--calls N] [--out FILE]
#
# Defaults: 3 rounds, 20000 calls a row. Each round runs every row of the table (2 and 3
# members, modes first and all, 1 and 32 calls outstanding) as thoth (`--driver thread`),
# thoth (`--driver inline`) and JGroups, one after the other, so that the three meet the same
# load on a shared machine. Every JSON line goes to FILE (default: a new file under /tmp,
# named on stderr), with "round" added; then a table of medians with their range over the
# rounds, and the ratio of calls per second to JGroups (the median of the per-round ratios).
# Builds thoth-rpc-perf (cargo, release) first; jgroups-rpc.sh installs what JGroups needs.
# Every process is started and stopped by the two benchmarks themselves; traffic stays on
# 127.0.0.1.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ROUNDS=3 CALLS=20000 OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2;;
    --calls) CALLS="$2"; shift 2;;
    --out) OUT="$2"; shift 2;;
    -h|--help) sed -n '2,15p' "$0"; exit 0;;
    *) echo "rpc-compare.sh: unknown option $1" >&2; exit 2;;
  esac
done
for v in "$ROUNDS" "$CALLS"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "rpc-compare.sh: $v is not a positive number" >&2; exit 2; }
done
[ -n "$OUT" ] || OUT="$(mktemp /tmp/rpc-compare.XXXXXX.jsonl)"
: > "$OUT"
echo "rpc-compare.sh: rows go to $OUT" >&2

(cd "$ROOT" && cargo build --release -q -p thoth-bins --bin thoth-rpc-perf)
PERF="$ROOT/target/release/thoth-rpc-perf"

tag() { sed "s/^{/{\"round\":$1,/" >> "$OUT"; }
for ((r = 1; r <= ROUNDS; r++)); do
  for m in 2 3; do
    for mode in first all; do
      for k in 1 32; do
        echo "round $r/$ROUNDS: $m members, $mode, $k outstanding" >&2
        for d in thread inline; do
          "$PERF" --driver "$d" --members "$m" --mode "$mode" --outstanding "$k" --calls "$CALLS" --json | tag "$r"
        done
        "$HERE/jgroups-rpc.sh" --members "$m" --mode "$mode" --outstanding "$k" --calls "$CALLS" | tag "$r"
      done
    done
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def who(x):
    return "jgroups" if x["system"].startswith("jgroups") else "thoth-" + x["driver"]
groups = {}
for x in rows:
    groups.setdefault((x["members"], x["mode"], x["outstanding"], who(x)), []).append(x)
def fig(vals, d=1):
    m = statistics.median(vals)
    return f"{m:,.{d}f} ({min(vals):,.{d}f}-{max(vals):,.{d}f})"
print("| members | mode | outstanding | system | p50 us | p99 us | calls/s | calls/s vs JGroups |")
print("|---:|---|---:|---|---:|---:|---:|---:|")
for key in sorted({k[:3] for k in groups}):
    jg = {x["round"]: x["calls_per_sec"] for x in groups.get(key + ("jgroups",), [])}
    for w in ["thoth-thread", "thoth-inline", "jgroups"]:
        xs = groups.get(key + (w,), [])
        if not xs:
            continue
        ratios = [x["calls_per_sec"] / jg[x["round"]] for x in xs if x["round"] in jg]
        ratio = "" if w == "jgroups" or not ratios else fig(ratios, 2) + " x"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {w} | {fig([x['p50_us'] for x in xs])} | "
              f"{fig([x['p99_us'] for x in xs])} | {fig([x['calls_per_sec'] for x in xs], 0)} | {ratio} |")
PY
