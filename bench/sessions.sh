#!/usr/bin/env bash
# Many sessions against one `virtgate daemon` (issue 8), as far as today's `virtgate dial`
# allows: one call per dial process, so N sessions are N processes. Each dial runs in its own
# client namespace (as separate hosts would; dial's raw GRE socket sees every GRE packet of its
# namespace, so N dials in one namespace would cost N² socket deliveries and measure that
# instead), all connected to the server namespace by veths on one bridge.
#
# Measures, per count of sessions: set-ups per second (all dials started at once; TCP + PPTP +
# LCP + MS-CHAPv2 + CCP/MPPE-128 + IPCP until `up`), set-up latency (median, max), the daemon's
# resident memory per session (RSS delta / sessions) and the daemon's CPU while the sessions
# sit idle.
#
#   bench/sessions.sh                     COUNTS="50 100 200" (needs root)
#   COUNTS="20" IDLE=5 bench/sessions.sh  one small run
#   VIRTGATE_BIN=path bench/sessions.sh   use this binary instead of building one
#
# Namespaces, processes and temporary files are removed on exit, whatever happens.
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"

COUNTS="${COUNTS:-50 100 200}"
# Seconds of idle sessions over which the daemon's CPU is measured.
IDLE="${IDLE:-10}"
# Seconds every dial has to come up.
SETUP_TIMEOUT="${SETUP_TIMEOUT:-60}"
# The server's lcp-echo-interval (seconds) while the sessions sit idle: 1 s with 200 sessions is
# as many echoes per second as 6,000 sessions at pptpd's usual 30 s.
ECHO="${ECHO:-1}"

need_root
need_cmd python3 python3
need_cmd ss iproute2
BIN="$(virtgate_bin)"

trap bench_cleanup EXIT
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM
bench_tmp

MAX=0
for n in $COUNTS; do [ "$n" -gt "$MAX" ] && MAX=$n; done
[ "$MAX" -le 500 ] || die "at most 500 sessions (the pool below has 506 addresses)"

new_netns srv
SRV=$NEW_NETNS
in_ns "$SRV" ip link add vgbbr0 type bridge
in_ns "$SRV" ip addr add 10.77.0.1/16 dev vgbbr0
in_ns "$SRV" ip link set vgbbr0 up
log "creating $MAX client namespaces"
CLIENTS=()
for i in $(seq 1 "$MAX"); do
  new_netns "c$i"
  ns=$NEW_NETNS
  CLIENTS+=("$ns")
  ip link add "vbs$i" netns "$SRV" type veth peer name vbc0 netns "$ns"
  in_ns "$SRV" ip link set "vbs$i" master vgbbr0 up
  ip -n "$ns" addr add "10.77.$((i / 250 + 1)).$((i % 250 + 2))/16" dev vbc0
  ip -n "$ns" link set vbc0 up
done
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

REPORT="$BENCH_TMP/report.tsv"
: >"$REPORT"

run_count() {
  local n=$1 i
  local dir="$BENCH_TMP/n$n"
  mkdir -p "$dir"
  write_pptpd_config "$dir" require 192.168.80.2-254,192.168.81.2-254 $((n + 10)) \
    "lcp-echo-interval $ECHO
lcp-echo-failure 4
"
  local dpid
  spawn "$SRV" "$dir/daemon.log" "$BIN" daemon --no-firewall \
    --pptpd-conf "$dir/pptpd.require.conf" --chap-secrets "$dir/chap-secrets" \
    --tun vgbpptp0 --log-level warn --max-sessions-per-user off
  dpid=$SPAWNED_PID
  wait_for 10 listening_1723 "$SRV" || die "daemon did not listen: $(cat "$dir/daemon.log")"
  sleep 0.5
  local rss0 cpu0 cpu_s0 cpu_s1
  rss0="$(rss_kib "$dpid")"
  cpu_s0="$(cpu_seconds "$dpid")"
  local pids=()
  local t0
  t0="$(date +%s.%N)"
  for i in $(seq 1 "$n"); do
    # stdout holds only the `up` line: its file's modification time is when the link came up.
    ip netns exec "${CLIENTS[$((i - 1))]}" "$BIN" dial 10.77.0.1 --user user1 \
      --password password1 --tun vgbdial0 --log-level warn \
      </dev/null >"$dir/dial$i.out" 2>"$dir/dial$i.err" &
    pids+=("$!")
  done
  local t_spawned
  t_spawned="$(date +%s.%N)"
  local up=0 deadline=$((SECONDS + SETUP_TIMEOUT))
  while [ "$SECONDS" -lt "$deadline" ]; do
    up="$(cat "$dir"/dial*.out 2>/dev/null | grep -c '^up ' || true)"
    [ "$up" -ge "$n" ] && break
    sleep 0.1
  done
  [ "$up" -ge "$n" ] || log "only $up of $n dials came up in ${SETUP_TIMEOUT}s (see $dir)"
  cpu_s1="$(cpu_seconds "$dpid")"
  sleep 1
  local rss1
  rss1="$(rss_kib "$dpid")"
  cpu0="$(cpu_seconds "$dpid")"
  local w0 w1
  w0="$(date +%s.%N)"
  sleep "$IDLE"
  w1="$(date +%s.%N)"
  local cpu1 rss2 dial_rss=0 p
  cpu1="$(cpu_seconds "$dpid")"
  rss2="$(rss_kib "$dpid")"
  for p in "${pids[@]}"; do dial_rss=$((dial_rss + $(rss_kib "$p"))); done
  python3 - "$dir" "$n" "$t0" "$t_spawned" "$rss0" "$rss1" "$rss2" "$cpu0" "$cpu1" "$w0" "$w1" \
    "$dial_rss" "$cpu_s0" "$cpu_s1" "$ECHO" >>"$REPORT" <<'PY'
import glob, os, statistics, sys
d = sys.argv[1]
n = int(sys.argv[2])
t0, t_sp = float(sys.argv[3]), float(sys.argv[4])
rss0, rss1, rss2 = (int(x) for x in sys.argv[5:8])
cpu0, cpu1, w0, w1 = (float(x) for x in sys.argv[8:12])
dial_rss = int(sys.argv[12])
cpu_s0, cpu_s1, echo = float(sys.argv[13]), float(sys.argv[14]), float(sys.argv[15])
ups = []
for f in glob.glob(os.path.join(d, "dial*.out")):
    if any(l.startswith("up ") for l in open(f)):
        ups.append(os.stat(f).st_mtime - t0)
ups.sort()
k = len(ups)
span = ups[-1] if ups else float("nan")
rate = k / span if ups else 0.0
per = (rss1 - rss0) / k if k else float("nan")
idle_cpu = 100 * (cpu1 - cpu0) / (w1 - w0)
# The daemon's own CPU per set-up (clock ticks of 10 ms: coarse for small counts), and what
# that allows: the set-up rate one core could sustain if the clients kept up.
setup_ms = 1000 * (cpu_s1 - cpu_s0) / k if k else float("nan")
cap = f"{1000 / setup_ms:.0f}" if setup_ms == setup_ms and setup_ms > 0 else "-"
echo_us = (cpu1 - cpu0) / ((w1 - w0) * k / echo) * 1e6 if k else float("nan")
print("\t".join(str(x) for x in [
    n, k, f"{t_sp - t0:.2f}", f"{span:.2f}", f"{rate:.1f}",
    f"{statistics.median(ups):.2f}" if ups else "-", f"{span:.2f}",
    f"{setup_ms:.2f}", cap,
    rss0, rss1, rss2, f"{per:.1f}", f"{idle_cpu:.2f}", f"{echo_us:.0f}", dial_rss // max(k, 1)]))
PY
  log "$(tail -n 1 "$REPORT")"
  # Hang every dial up at once, give them 5 s, then reap them all.
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    local left=0
    for p in "${pids[@]}"; do alive "$p" && left=1 && break; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do stop_pid "$p" KILL; done
  stop_pid "$dpid"
}

for n in $COUNTS; do
  log "$n sessions"
  run_count "$n"
done

python3 - "$REPORT" "$IDLE" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
print(f"\none dial process per session, each in its own namespace; idle over {sys.argv[2]} s")
print("set-ups/s: sessions / time until the last `up` (bounded by starting the dial processes);")
print("cpu ms/setup: the daemon's CPU per set-up, and the set-ups/s one core would allow at that;")
print("KiB/session: daemon RSS delta / sessions; idle cpu%: the daemon while the sessions idle with")
print("LCP echoes (us/echo: that CPU per echo exchange); dial KiB: RSS of one dial process")
hdr = ["sessions", "up", "spawn s", "all up s", "set-ups/s", "p50 s", "max s", "cpu ms/setup",
       "1-core cap/s", "rss0 KiB", "rss KiB", "rss idle", "KiB/session", "idle cpu%", "us/echo",
       "dial KiB"]
w = [max(len(h), 8) for h in hdr]
print("  ".join(f"{h:>{n}}" for h, n in zip(hdr, w)))
for r in rows:
    print("  ".join(f"{x:>{n}}" for x, n in zip(r, w)))
PY
