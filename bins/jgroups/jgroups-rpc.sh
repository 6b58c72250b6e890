#!/usr/bin/env bash
# The JGroups 2.12 reference for `thoth-rpc-perf`: the same Group RPC workload through an
# RpcDispatcher over JGroups' default stack (udp.xml, Debian's libjgroups-java) on loopback
# multicast, one JVM per member.
#
#   bins/jgroups/jgroups-rpc.sh [--members N] [--mode first|all] [--outstanding K] [--calls N]
#                               [--warmup N]
#
# Defaults: 3 members, mode all, 1 outstanding, 20000 calls after 2000 warm-up calls (as in
# thoth-rpc-perf). Member 0 calls a no-op on the whole group, itself included (GET_FIRST for
# first, GET_ALL for all); with 1 outstanding the calls are synchronous and timed one by one,
# with K > 1 they are asynchronous (callRemoteMethodsWithFuture), K in flight, each timed from
# issue to completion (see JgroupsRpc.java). Prints one JSON line: {"system":"jgroups-2.12",
# "stack":"udp.xml","mode":..,"members":..,"outstanding":..,"calls":..,"p50_us":..,"p99_us":..,
# "p999_us":..,"calls_per_sec":..}; everything else goes to stderr. Installs libjgroups-java
# and a JDK with apt-get when they are missing. Traffic stays on 127.0.0.1 (multicast TTL 0);
# every JVM runs under a time limit and is stopped by its PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MEMBERS=3 MODE=all OUTSTANDING=1 CALLS=20000 WARMUP=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --members) MEMBERS="$2"; shift 2;;
    --mode) MODE="$2"; shift 2;;
    --outstanding) OUTSTANDING="$2"; shift 2;;
    --calls) CALLS="$2"; shift 2;;
    --warmup) WARMUP="$2"; shift 2;;
    -h|--help) sed -n '2,17p' "$0"; exit 0;;
    *) echo "jgroups-rpc.sh: unknown option $1" >&2; exit 2;;
  esac
done
case "$MODE" in first|all) ;; *) echo "jgroups-rpc.sh: --mode is first or all" >&2; exit 2;; esac
for v in "$MEMBERS" "$OUTSTANDING" "$CALLS"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "jgroups-rpc.sh: $v is not a positive number" >&2; exit 2; }
done
[[ "$WARMUP" =~ ^[0-9]+$ ]] || { echo "jgroups-rpc.sh: --warmup $WARMUP is not a number" >&2; exit 2; }

. "$HERE/lib.sh"
jgroups_prepare "$HERE/JgroupsRpc.java"

jgroups_run JgroupsRpc "$MODE" "$OUTSTANDING" "$CALLS" "$WARMUP"
line="$(grep -h '^{"system"' "$WORK/member0.out" | head -1 || true)"
if [ -z "$line" ]; then
  echo "jgroups-rpc.sh: no result (exit status $status):" >&2
  tail -n 5 "$WORK"/member*.out "$WORK"/member*.err >&2
  exit 1
fi
[ "$status" = 0 ] || echo "jgroups-rpc.sh: a member exited with status $status" >&2
echo "$line"
