# What the JGroups 2.12 reference scripts share (sourced by jgroups-perf.sh and
# jgroups-rpc.sh): installing what they need, a work directory and the EXIT trap that stops
# every JVM they started, and starting MEMBERS member JVMs one at a time on loopback
# multicast (TTL 0, a random group and port), each under a time limit.

JAR=/usr/share/java/jgroups.jar

# jgroups_prepare FILE.java: installs libjgroups-java, a JDK and unzip with apt-get when
# missing; compiles FILE.java into WORK, with JGroups's udp.xml beside it.
jgroups_prepare() {
  local missing=()
  [ -f "$JAR" ] || missing+=(libjgroups-java)
  command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
  command -v unzip >/dev/null 2>&1 || missing+=(unzip)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  fi
  WORK="$(mktemp -d)"
  PIDS=()
  trap jgroups_stop EXIT
  javac -nowarn -cp "$JAR" -d "$WORK" "$1" >&2
  unzip -p "$JAR" udp.xml > "$WORK/udp.xml"
}

jgroups_stop() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}

# jgroups_run CLASS ARGS...: starts MEMBERS JVMs of CLASS with `udp.xml CLUSTER MEMBERS
# ARGS...`, one at a time (each prints JOINED once in the group, so the first is the
# coordinator and ranks follow start order), output in WORK/member$i.out and .err; waits
# for them all and sets `status` to the last failure's (0 if none).
jgroups_run() {
  local class="$1" i k p
  shift
  local group="239.84.$((RANDOM % 256)).$((1 + RANDOM % 254))" port=$((40000 + RANDOM % 10000))
  local cluster="thoth-ref-$$-$RANDOM"
  local opts=(-Djava.net.preferIPv4Stack=true -Djgroups.bind_addr=127.0.0.1 -Djgroups.udp.mcast_addr="$group"
              -Djgroups.udp.mcast_port="$port" -Djgroups.udp.ip_ttl=0 -Xms256m -Xmx2g)
  for ((i = 0; i < MEMBERS; i++)); do
    timeout 300 java "${opts[@]}" -cp "$WORK:$JAR" "$class" "$WORK/udp.xml" "$cluster" "$MEMBERS" "$@" \
      > "$WORK/member$i.out" 2> "$WORK/member$i.err" &
    PIDS+=("$!")
    for ((k = 0; k < 300; k++)); do grep -q '^JOINED' "$WORK/member$i.out" 2>/dev/null && break; sleep 0.1; done
  done
  status=0
  for p in "${PIDS[@]}"; do wait "$p" || status=$?; done
  PIDS=()
}
