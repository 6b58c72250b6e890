#!/usr/bin/env bash
# The JGroups 2.12 reference for `thoth-perf`: the same workload through JGroups' default
# stack (udp.xml, Debian's libjgroups-java) on loopback multicast, one JVM per member.
#
#   bins/jgroups/jgroups-perf.sh [--members N] [--senders all|N] [--size BYTES] [--count N] [--warmup F]
#                                [--total]
#
# Defaults: 3 members, all sending, 1024-byte messages, 195312 per sender (thoth-perf's
# default count at 1 KB: about 200 MB per sender), a warm-up round of 1.0 x count first.
# --total adds JGroups' total order (SEQUENCER, right above the flow control UFC, where
# JGroups' own sequencer.xml has it): the reference for Thoth's `reliable_total`.
# Prints one JSON line: {"system":"jgroups-2.12","stack":"udp.xml"|"udp.xml+SEQUENCER",..,
# "size":..,"count":..,"msgs_per_sec":..,"mb_per_sec":..,"fifo_violations":..}. msgs_per_sec is
# the slowest receiver's, timed as thoth-perf times it: from the start of the measured round
# to the last arrival (see JgroupsPerf.java). Installs libjgroups-java and a JDK with
# apt-get when they are missing. Traffic stays on 127.0.0.1 (multicast TTL 0); every JVM
# runs under a time limit and is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MEMBERS=3 SENDERS=all SIZE=1024 COUNT=195312 WARMUP=1.0 STACK=udp.xml
while [ $# -gt 0 ]; do
  case "$1" in
    --members) MEMBERS="$2"; shift 2;;
    --senders) SENDERS="$2"; shift 2;;
    --size) SIZE="$2"; shift 2;;
    --count) COUNT="$2"; shift 2;;
    --warmup) WARMUP="$2"; shift 2;;
    --total) STACK=udp.xml+SEQUENCER; shift;;
    -h|--help) sed -n '2,17p' "$0"; exit 0;;
    *) echo "jgroups-perf.sh: unknown option $1" >&2; exit 2;;
  esac
done
[ "$SENDERS" = all ] && SENDERS="$MEMBERS"

. "$HERE/lib.sh"
jgroups_prepare "$HERE/JgroupsPerf.java"
if [ "$STACK" = udp.xml+SEQUENCER ]; then
  python3 - "$WORK/udp.xml" <<'PY'
import re, sys
path = sys.argv[1]
xml = open(path).read()
at = re.search(r"^([ \t]*)<UFC\b", xml, re.M)
if at is None:
    sys.exit("jgroups-perf.sh: no UFC in udp.xml to put SEQUENCER above")
open(path, "w").write(xml[:at.start()] + at.group(1) + "<SEQUENCER/>\n" + xml[at.start():])
PY
fi

jgroups_run JgroupsPerf "$SENDERS" "$SIZE" "$COUNT" "$WARMUP"
line="$(grep -h '^RESULT' "$WORK"/member*.out | head -1 || true)"
if [ -z "$line" ]; then
  echo "jgroups-perf.sh: no result (exit status $status):" >&2
  tail -n 5 "$WORK"/member*.out "$WORK"/member*.err >&2
  exit 1
fi
python3 - "$line" "$STACK" <<'PY'
import json, sys
kv = dict(t.split("=", 1) for t in sys.argv[1].split()[1:])
rate, size = float(kv["msgs_per_sec"]), int(kv["size"])
print(json.dumps({"system": "jgroups-2.12", "stack": sys.argv[2], "members": int(kv["members"]),
                  "senders": int(kv["senders"]), "size": size, "count": int(kv["count"]),
                  "msgs_per_sec": round(rate, 1), "mb_per_sec": round(rate * size / 1e6, 3),
                  "fifo_violations": int(kv["fifo_violations"])}))
PY
