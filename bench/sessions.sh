#!/usr/bin/env bash
# Many sessions against one `virtgate daemon` (issue 8): one `virtgate dial --load N` process
# places N calls (one per control connection, as Windows and pptp-linux clients do and as
# pptpd serves them), each set up in full (TCP + PPTP + LCP + MS-CHAPv2 + CCP/MPPE-128 +
# IPCP), with no TUN on the client side; the sessions then stay up answering the server's LCP
# echoes. A server and a client namespace joined by a veth; the daemon hands out addresses from
# a /18 that exists only inside the server namespace (10.200.0.0/18).
#
# Reports per count of sessions: set-ups/s (first start to last `up`), set-up latency, failures
# by reason, the daemon's CPU per set-up, its resident memory per idle session (RSS delta /
# sessions), its CPU while the sessions idle with LCP echo, and what one load-mode dial costs.
#
#   bench/sessions.sh                           COUNTS=10000 (needs root; ~2 min)
#   COUNTS="1000 10000" IDLE=30 ECHO=30 bench/sessions.sh
#   CONCURRENCY=512 RATE=0 bench/sessions.sh    set-ups in flight / started per second (0: no cap)
#   VIRTGATE_BIN=path bench/sessions.sh         use this binary instead of building one
#   DAEMON_ARGS="--flag ..." bench/sessions.sh  extra daemon flags
#   ABUSE_ARGS="..." bench/sessions.sh          the abuse-limit flags (default: the three below off)
#
# Every session comes from one address as one user: the daemon runs with its abuse limits on
# connections per address and sessions (total, per user) turned off.
#
# Namespaces, processes and temporary files are removed on exit, whatever happens.
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"

COUNTS="${COUNTS:-10000}"
# Seconds over which the daemon's idle CPU is measured (the sessions sit idle, LCP echo only);
# at least ECHO, so that every session's echo timer fires in the window.
IDLE="${IDLE:-60}"
# The server's lcp-echo-interval (pptpd's options.pptpd ships 30).
ECHO="${ECHO:-30}"
CONCURRENCY="${CONCURRENCY:-256}"
RATE="${RATE:-0}"
SETUP_TIMEOUT="${SETUP_TIMEOUT:-30}"
DAEMON_ARGS="${DAEMON_ARGS:-}"
# The abuse limits that would refuse this load (one address, one user); e.g.
# ABUSE_ARGS="--conn-rate off --max-sessions 20000 --max-sessions-per-user off" measures the
# daemon with a session cap on.
ABUSE_ARGS="${ABUSE_ARGS:---conn-rate off --max-sessions off --max-sessions-per-user off}"

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
[ "$MAX" -le 16000 ] || die "at most 16,000 sessions (the pool is a /18: 64 x 254 addresses)"
# One TCP socket per session on each side.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((MAX + 100)) ] || die "open-file limit $(ulimit -n) too low for $MAX sessions"

new_netns srv
SRV=$NEW_NETNS
new_netns cli
CLI=$NEW_NETNS
veth_pair "$SRV" vgbs0 10.77.0.1/24 "$CLI" vgbc0 10.77.0.2/24
# 10,000 connections from one address: room in the accept queue while set-ups burst.
in_ns "$SRV" sysctl -qw net.core.somaxconn=4096 net.ipv4.tcp_max_syn_backlog=8192
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

REPORT="$BENCH_TMP/report.tsv"
: >"$REPORT"

# remoteip over 10.200.0.0/18, written as pptpd ranges (one octet ranged per entry).
POOL="$(python3 -c 'print(",".join(f"10.200.{k}.1-254" for k in range(64)))')"

run_count() {
  local n=$1
  local dir="$BENCH_TMP/n$n"
  mkdir -p "$dir/state"
  write_pptpd_config "$dir" require "$POOL" $((n + 10)) \
    "lcp-echo-interval $ECHO
lcp-echo-failure 4
"
  local dpid
  # shellcheck disable=SC2086
  spawn "$SRV" "$dir/daemon.log" "$BIN" daemon --no-firewall \
    --pptpd-conf "$dir/pptpd.require.conf" --chap-secrets "$dir/chap-secrets" \
    --socket "$dir/ctl.sock" --state-dir "$dir/state" --no-default-network \
    --tun vgbpptp0 --log-level warn \
    $ABUSE_ARGS $DAEMON_ARGS
  dpid=$SPAWNED_PID
  wait_for 10 listening_1723 "$SRV" || die "daemon did not listen: $(cat "$dir/daemon.log")"
  sleep 0.5
  local rss0 cpu_s0 cpu_s1 t0 lpid
  rss0="$(rss_kib "$dpid")"
  cpu_s0="$(cpu_seconds "$dpid")"
  t0="$(date +%s.%N)"
  spawn "$CLI" "$dir/dial.out" "$BIN" dial 10.77.0.1 --user user1 --password password1 \
    --load "$n" --concurrency "$CONCURRENCY" --rate "$RATE" --setup-timeout "$SETUP_TIMEOUT" \
    --ping 10 --log-level warn
  lpid=$SPAWNED_PID
  local deadline=$((SECONDS + SETUP_TIMEOUT + n / 50 + 30))
  until grep -q '"event":"setup"' "$dir/dial.out" 2>/dev/null; do
    alive "$lpid" || die "the load dial exited: $(tail -n 5 "$dir/dial.out")"
    [ "$SECONDS" -lt "$deadline" ] || die "no set-up summary in time: $(tail -n 3 "$dir/dial.out")"
    sleep 0.2
  done
  cpu_s1="$(cpu_seconds "$dpid")"
  # Where slow set-ups come from: SYNs or connections the server's listen queue dropped,
  # retransmitted segments (1 s initial RTO), on either side.
  log "server: $(in_ns "$SRV" nstat -az TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop TcpRetransSegs 2>/dev/null | awk 'NR>1 {printf "%s=%s ", $1, $2}')"
  log "client: $(in_ns "$CLI" nstat -az TcpRetransSegs TcpExtTCPSynRetrans 2>/dev/null | awk 'NR>1 {printf "%s=%s ", $1, $2}')"
  local dial_cpu_setup
  dial_cpu_setup="$(cpu_seconds "$lpid")"
  # Let the last set-ups' stragglers (acks, echo replies) and the route worker settle.
  sleep 2
  local rss1 cpu0 w0 dcpu0
  rss1="$(rss_kib "$dpid")"
  cpu0="$(cpu_seconds "$dpid")"
  local st0 st1
  st0="$(grep '"event":"status"' "$dir/dial.out" | tail -n 1)"
  dcpu0="$(cpu_seconds "$lpid")"
  w0="$(date +%s.%N)"
  sleep "$IDLE"
  local cpu1 w1 rss2 dcpu1 dial_rss routes active
  cpu1="$(cpu_seconds "$dpid")"
  dcpu1="$(cpu_seconds "$lpid")"
  w1="$(date +%s.%N)"
  st1="$(grep '"event":"status"' "$dir/dial.out" | tail -n 1)"
  rss2="$(rss_kib "$dpid")"
  dial_rss="$(rss_kib "$lpid")"
  routes="$(in_ns "$SRV" ip -4 route show dev vgbpptp0 | grep -c '^10\.200\.' || true)"
  active="$("$BIN" status --socket "$dir/ctl.sock" --json 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["sessions_active"])' 2>/dev/null || echo '?')"
  # Hang up (SIGTERM: LCP Terminate, CCRQ, StopCCRQ on every connection) and see the daemon
  # reap every session.
  stop_pid "$lpid" TERM
  local left="?" i
  for i in $(seq 1 100); do
    left="$("$BIN" status --socket "$dir/ctl.sock" --json 2>/dev/null \
      | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["sessions_active"]+s["sessions_starting"]+s["control_connections"])' 2>/dev/null || echo '?')"
    [ "$left" = 0 ] && break
    sleep 0.2
  done
  python3 - "$dir/dial.out" "$n" "$t0" "$rss0" "$rss1" "$rss2" "$cpu0" "$cpu1" "$w0" "$w1" \
    "$cpu_s0" "$cpu_s1" "$ECHO" "$dial_rss" "$dial_cpu_setup" "$dcpu0" "$dcpu1" "$routes" \
    "$active" "$left" "$st0" "$st1" >>"$REPORT" <<'PY'
import json, sys
out, n, t0 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rss0, rss1, rss2 = (int(x) for x in sys.argv[4:7])
cpu0, cpu1, w0, w1, cpu_s0, cpu_s1, echo = (float(x) for x in sys.argv[7:14])
dial_rss = int(sys.argv[14])
dial_cpu_setup, dcpu0, dcpu1 = (float(x) for x in sys.argv[15:18])
routes, active, left = sys.argv[18], sys.argv[19], sys.argv[20]
def rx(line):
    try:
        return json.loads(line)["rx_control"]
    except (ValueError, KeyError):
        return 0
# LCP Echo-Requests the clients received during the idle window (control frames; nothing
# else is negotiated once every session is up).
echoes = rx(sys.argv[22]) - rx(sys.argv[21])
ev = {}
for line in open(out):
    line = line.strip()
    if line.startswith("{"):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        ev[j.get("event")] = j
s = ev.get("setup", {})
e = ev.get("end", {})
up = s.get("up", 0)
per = (rss1 - rss0) / up if up else float("nan")
idle = w1 - w0
idle_cpu = 100 * (cpu1 - cpu0) / idle
setup_ms = 1000 * (cpu_s1 - cpu_s0) / up if up else float("nan")
echo_us = (cpu1 - cpu0) / echoes * 1e6 if echoes > 0 else float("nan")
lat = s.get("latency_ms", {})
fails = ";".join(f"{k}={v}" for k, v in sorted(s.get("failures", {}).items())) or "-"
dwu = ";".join(f"{k}={v}" for k, v in sorted(e.get("down_while_up", {}).items())) or "-"
print("\t".join(str(x) for x in [
    n, up, s.get("failed", 0), f"{s.get('seconds_to_all_up', 0):.2f}",
    f"{s.get('setups_per_s', 0):.0f}", f"{lat.get('p50', 0):.0f}", f"{lat.get('p99', 0):.0f}",
    f"{setup_ms:.3f}", rss0, rss1, rss2, f"{per:.2f}", f"{idle_cpu:.2f}", f"{echoes / idle:.0f}",
    f"{echo_us:.1f}",
    dial_rss, f"{dial_cpu_setup:.1f}", f"{100 * (dcpu1 - dcpu0) / idle:.2f}", routes, active,
    left, f"{e.get('pings_received', 0)}/{e.get('pings_sent', 0)}", fails, dwu]))
PY
  log "$(tail -n 1 "$REPORT")"
  stop_pid "$dpid"
}

for n in $COUNTS; do
  log "$n sessions"
  run_count "$n"
done

python3 - "$REPORT" "$IDLE" "$ECHO" "$CONCURRENCY" "$RATE" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
idle, echo, conc, rate = sys.argv[2:6]
print(f"""
one `virtgate dial --load N` (one call per control connection, --concurrency {conc}, --rate {rate});
server lcp-echo-interval {echo} s; idle measured over {idle} s
set-ups/s: sessions up / time from the first start to the last `up`; p50/p99: set-up latency (ms)
cpu ms/setup: the daemon's CPU per set-up; KiB/session: daemon RSS delta (after set-up) / sessions
idle cpu%: the daemon while every session idles with LCP echo; echo/s: Echo-Requests the
clients received per second in that window; us/echo: the daemon's idle CPU per echo exchange
dial: the load process's RSS (KiB), CPU seconds for the set-ups, CPU% while idle
routes: /32 routes on the daemon's TUN; active: sessions the daemon reports up;
left: sessions + control connections the daemon still held after the dial hung up
pings: ICMP echo replies / requests of the 10 pinging sessions""")
hdr = ["sessions", "up", "failed", "all up s", "set-ups/s", "p50", "p99", "cpu ms/setup",
       "rss0 KiB", "rss KiB", "rss idle", "KiB/session", "idle cpu%", "echo/s", "us/echo", "dial KiB",
       "dial cpu s", "dial idle%", "routes", "active", "left", "pings", "failures",
       "down while up"]
w = [max(len(h), 6) for h in hdr]
print("  ".join(f"{h:>{n}}" for h, n in zip(hdr, w)))
for r in rows:
    print("  ".join(f"{x:>{n}}" for x, n in zip(r, w)))
PY
