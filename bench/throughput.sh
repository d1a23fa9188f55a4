#!/usr/bin/env bash
# Throughput of one tunnel between two network namespaces, measured side by side in one run
# (issue 8): plain veth (the ceiling), virtgate (`virtgate dial` in the client namespace,
# `virtgate daemon` in the server namespace) with MPPE-128 stateless and with MPPE off, and
# boringtun (userspace WireGuard) between the same namespaces. iperf3 TCP with 1 and 4 streams
# in both directions, and 64-byte UDP packets per second. Prints one table with the ratios to
# boringtun and to veth. Absolute numbers on a shared 2-core machine are noise; ratios from
# one run are the result.
#
#   bench/throughput.sh                       everything (needs root)
#   DURATION=10 bench/throughput.sh           longer iperf3 runs (default 5 s, first 1 s omitted)
#   VIRTGATE_BIN=path bench/throughput.sh     use this binary instead of building one
#   PATHS="veth virtgate-mppe" bench/throughput.sh   a subset of: veth virtgate-mppe
#                                             virtgate-nomppe boringtun
#   TESTS="tcp1-up udp64-up" bench/throughput.sh     a subset of: tcp1-up tcp1-down tcp4-up
#                                             tcp4-down udp64-up udp64-down
#   PROFILE=1 bench/throughput.sh             also perf-record the daemon (MPPE-128, 1 stream,
#                                             each direction) and print its top symbols
#   RESULTS=file.tsv bench/throughput.sh      keep the raw results
#
# Installs iperf3 and wireguard-tools (Debian) and boringtun-cli (crates.io, into
# $BENCH_CACHE, default /var/cache/virtgate-bench) when missing. Namespaces, processes and
# temporary files are removed on exit, whatever happens.
set -Eeuo pipefail
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-5}"
PATHS="${PATHS:-veth virtgate-mppe virtgate-nomppe boringtun}"
TESTS="${TESTS:-tcp1-up tcp1-down tcp4-up tcp4-down udp64-up udp64-down}"
PROFILE="${PROFILE:-0}"

need_root
need_cmd iperf3 iperf3
need_cmd python3 python3
need_cmd ss iproute2
case " $PATHS " in *" boringtun "*)
  need_cmd wg wireguard-tools
  BORINGTUN="${BORINGTUN:-$(command -v boringtun-cli || true)}"
  if [ -z "$BORINGTUN" ]; then
    BORINGTUN="$BENCH_CACHE/bin/boringtun-cli"
    if [ ! -x "$BORINGTUN" ]; then
      log "installing boringtun-cli into $BENCH_CACHE (a few minutes, once)"
      CARGO_TARGET_DIR="$BENCH_CACHE/build" cargo install -q boringtun-cli --locked --root "$BENCH_CACHE" >&2
    fi
  fi
  ;;
esac
[ "$PROFILE" = 1 ] && need_cmd perf linux-perf
BIN="$(virtgate_bin)"

trap bench_cleanup EXIT
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM
bench_tmp
RESULTS="${RESULTS:-$BENCH_TMP/results.tsv}"
: >"$RESULTS"

new_netns srv
SRV=$NEW_NETNS
new_netns cli
CLI=$NEW_NETNS
# The underlay: 10.77.0.0/24 exists only on this veth pair inside our two namespaces.
veth_pair "$SRV" vbs0 10.77.0.1/24 "$CLI" vbc0 10.77.0.2/24
log "namespaces $SRV and $CLI over veth (MTU 1500); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

IPERF_PORT=5201
IPERF_PID=""
SRV_PID=""
CLI_PID=""

start_iperf_server() {
  spawn "$SRV" "$BENCH_TMP/iperf3-server.log" iperf3 -s -p "$IPERF_PORT"
  IPERF_PID=$SPAWNED_PID
  wait_for 5 sh -c "ip netns exec $SRV ss -ltn | grep -q ':$IPERF_PORT '" \
    || die "iperf3 server did not start"
}

# run_iperf PATHNAME TARGET_IP TEST: one iperf3 client run; appends a result line
# (path, test, value, unit, server CPU %, client CPU %).
run_iperf() {
  local path=$1 target=$2 test=$3 args=() unit
  case "$test" in
    tcp1-up) args=() ;;
    tcp1-down) args=(-R) ;;
    tcp4-up) args=(-P 4) ;;
    tcp4-down) args=(-P 4 -R) ;;
    udp64-up) args=(-u -l 64 -b 0) ;;
    udp64-down) args=(-u -l 64 -b 0 -R) ;;
    *) die "unknown test $test" ;;
  esac
  local json="$BENCH_TMP/$path.$test.json"
  local s0 c0 s1 c1 t0 t1
  s0="$( [ -n "$SRV_PID" ] && cpu_seconds "$SRV_PID" || echo 0)"
  c0="$( [ -n "$CLI_PID" ] && cpu_seconds "$CLI_PID" || echo 0)"
  t0="$(date +%s.%N)"
  local st0 st1
  st0="$(head -n 1 /proc/stat)"
  # TCP: the first second (slow start) is omitted; UDP counters do not survive -O.
  local omit=(-O 1)
  case "$test" in udp*) omit=() ;; esac
  if ! in_ns "$CLI" timeout $((DURATION + 20)) iperf3 -c "$target" -p "$IPERF_PORT" \
      -t "$DURATION" "${omit[@]}" -J "${args[@]}" >"$json" 2>"$json.err"; then
    log "$path $test: iperf3 failed: $(head -c 300 "$json.err") $(grep -o '"error":[^}]*' "$json" | head -c 300)"
    printf '%s\t%s\tNaN\t-\t-\t-\n' "$path" "$test" >>"$RESULTS"
    return 0
  fi
  t1="$(date +%s.%N)"
  st1="$(head -n 1 /proc/stat)"
  s1="$( [ -n "$SRV_PID" ] && cpu_seconds "$SRV_PID" || echo 0)"
  c1="$( [ -n "$CLI_PID" ] && cpu_seconds "$CLI_PID" || echo 0)"
  python3 - "$json" "$path" "$test" "$s0" "$s1" "$c0" "$c1" "$t0" "$t1" "$SRV_PID" "$CLI_PID" \
    "$st0" "$st1" >>"$RESULTS" <<'PY'
import json, sys
f, path, test = sys.argv[1:4]
s0, s1, c0, c1, t0, t1 = map(float, sys.argv[4:10])
srv_pid, cli_pid = sys.argv[10], sys.argv[11]
# The whole machine's busy share over the test (/proc/stat: idle + iowait are not busy): near
# 100% means every core was taken and the rate follows the CPU cost per byte.
a = [int(x) for x in sys.argv[12].split()[1:]]
b = [int(x) for x in sys.argv[13].split()[1:]]
d_all = sum(b) - sum(a)
d_idle = (b[3] + b[4]) - (a[3] + a[4])
busy = f"machine busy {100 * (d_all - d_idle) / d_all:.0f}%" if d_all > 0 else ""

wall = max(t1 - t0, 1e-9)
cpu = lambda a, b, pid: f"{100 * (b - a) / wall:.0f}" if pid else "-"
d = None
try:
    d = json.load(open(f))
    end = d["end"]
    end["sum_received"], end["sum_sent"]
except (ValueError, KeyError, TypeError) as e:
    err = d.get("error", repr(e)) if isinstance(d, dict) else repr(e)
    print(f"{path}\t{test}\tNaN\t-\t{cpu(s0, s1, srv_pid)}\t{cpu(c0, c1, cli_pid)}\tno result: {err}")
    sys.exit(0)
if test.startswith("udp"):
    # Packets the receiver got per second (its bytes over the 64-byte payload), and how many
    # of the sent ones that is: with -b 0 the sender outruns whatever is slowest.
    r, s = end["sum_received"], end["sum_sent"]
    got = r["bytes"] / 64
    value, unit = got / (r["seconds"] or 1.0), "pps"
    sent = s["bytes"] / 64
    extra = f'sent {sent / (s["seconds"] or 1.0) / 1000:.0f} kpps, delivered {100 * got / max(sent, 1):.0f}%, {busy}'
else:
    value, unit = end["sum_received"]["bits_per_second"] / 1e9, "Gbit/s"
    extra = f'retr {end["sum_sent"].get("retransmits", 0)}, {busy}'
print(f"{path}\t{test}\t{value:.6g}\t{unit}\t{cpu(s0, s1, srv_pid)}\t{cpu(c0, c1, cli_pid)}\t{extra}")
PY
  log "$(tail -n 1 "$RESULTS")"
}

# Two pings through the tunnel.
tunnel_alive() { in_ns "$CLI" ping -c 2 -i 0.2 -W 1 -q "$1" >/dev/null 2>&1; }

# run_tests PATH TARGET [RESTART]: every test in $TESTS. With RESTART (a command), the tunnel is
# checked after each test; one that stopped passing traffic is noted in the table and restarted,
# so one failure does not void the tests after it.
run_tests() {
  local path=$1 target=$2 restart=${3:-} t
  for t in $TESTS; do
    run_iperf "$path" "$target" "$t"
    if [ -n "$restart" ] && ! tunnel_alive "$target"; then
      log "$path: no traffic passes the tunnel after $t; restarting it"
      sed -i '$ s/$/; TUNNEL DEAD AFTER THIS TEST (restarted)/' "$RESULTS"
      $restart
    fi
  done
}

# ---- veth ---------------------------------------------------------------------------------
bench_veth() {
  SRV_PID="" CLI_PID=""
  run_tests veth 10.77.0.1
}

# ---- virtgate -----------------------------------------------------------------------------
VG_PEER=""
start_virtgate() {
  local mppe=$1
  write_pptpd_config "$BENCH_TMP" "$mppe" 192.168.77.100-110 10
  spawn "$SRV" "$BENCH_TMP/daemon.$mppe.log" "$BIN" daemon --no-firewall \
    --pptpd-conf "$BENCH_TMP/pptpd.$mppe.conf" --chap-secrets "$BENCH_TMP/chap-secrets" \
    --tun vgbpptp0 --log-level warn
  SRV_PID=$SPAWNED_PID
  wait_for 10 listening_1723 "$SRV" || die "daemon did not listen: $(cat "$BENCH_TMP/daemon.$mppe.log")"
  local dial_mppe=require
  [ "$mppe" = off ] && dial_mppe=refuse
  spawn "$CLI" "$BENCH_TMP/dial.$mppe.log" "$BIN" dial 10.77.0.1 --user user1 \
    --password password1 --tun vgbdial0 --mppe "$dial_mppe" --log-level warn
  CLI_PID=$SPAWNED_PID
  wait_for 30 grep -q '^up ' "$BENCH_TMP/dial.$mppe.log" \
    || die "dial did not come up: $(cat "$BENCH_TMP/dial.$mppe.log") / $(cat "$BENCH_TMP/daemon.$mppe.log")"
  VG_PEER="$(sed -n 's/^up .*peer=\([0-9.]*\).*/\1/p' "$BENCH_TMP/dial.$mppe.log" | head -n1)"
  log "virtgate up ($mppe): $(grep '^up ' "$BENCH_TMP/dial.$mppe.log")"
  in_ns "$CLI" ping -c 1 -W 2 "$VG_PEER" >/dev/null || die "no ping through the tunnel"
}

stop_virtgate() {
  stop_pid "$CLI_PID"
  stop_pid "$SRV_PID"
  SRV_PID="" CLI_PID=""
}

profile_virtgate() {
  local dir
  for dir in up down; do
    local data="$BENCH_TMP/perf.$dir.data"
    log "perf: daemon while 1 TCP stream goes $dir"
    perf record -q -e cpu-clock -F 2000 -g -p "$SRV_PID" -o "$data" -- sleep "$((DURATION + 1))" \
      >/dev/null 2>&1 &
    local perf_pid=$!
    run_iperf "virtgate-mppe-profiled" "$VG_PEER" "tcp1-$dir"
    wait "$perf_pid" || true
    echo "=== perf: virtgate daemon, MPPE-128 stateless, 1 TCP stream $dir (self time) ==="
    perf report -i "$data" --no-children --stdio --sort dso,symbol -g none --percent-limit 0.7 \
      2>/dev/null | grep '%' | grep -v '^#' | cut -c1-120 | head -n 30
    echo "=== perf: inclusive time of the system calls (kernel work done on the daemon's behalf) ==="
    perf report -i "$data" --children --stdio --sort symbol -g none 2>/dev/null \
      | grep -E '__x64_sys_(sendto|recvfrom|epoll_wait)|ksys_(read|write)' | cut -c1-120 | head -n 12
  done
}

VG_MPPE=""
restart_virtgate() {
  stop_virtgate
  start_virtgate "$VG_MPPE"
}

bench_virtgate() {
  local mppe=$1 name=$2
  VG_MPPE=$mppe
  start_virtgate "$mppe"
  run_tests "$name" "$VG_PEER" restart_virtgate
  if [ "$PROFILE" = 1 ] && [ "$mppe" = require ]; then
    profile_virtgate
  fi
  stop_virtgate
}

# ---- boringtun ----------------------------------------------------------------------------
WG_IFS="vgws$$"
WG_IFC="vgwc$$"
WG_IFS="${WG_IFS:0:15}"
WG_IFC="${WG_IFC:0:15}"

start_boringtun() {
  local ifs=$WG_IFS ifc=$WG_IFC
  umask 077
  wg genkey >"$BENCH_TMP/wg-s.key"
  wg genkey >"$BENCH_TMP/wg-c.key"
  umask 022
  local spub cpub
  spub="$(wg pubkey <"$BENCH_TMP/wg-s.key")"
  cpub="$(wg pubkey <"$BENCH_TMP/wg-c.key")"
  spawn "$SRV" "$BENCH_TMP/boringtun-s.log" "$BORINGTUN" --disable-drop-privileges \
    --foreground "$ifs"
  SRV_PID=$SPAWNED_PID
  spawn "$CLI" "$BENCH_TMP/boringtun-c.log" "$BORINGTUN" --disable-drop-privileges \
    --foreground "$ifc"
  CLI_PID=$SPAWNED_PID
  wait_for 10 test -S "/var/run/wireguard/$ifs.sock" || die "boringtun (server) did not start"
  wait_for 10 test -S "/var/run/wireguard/$ifc.sock" || die "boringtun (client) did not start"
  in_ns "$SRV" wg set "$ifs" listen-port 51820 private-key "$BENCH_TMP/wg-s.key" \
    peer "$cpub" allowed-ips 10.78.0.2/32
  in_ns "$CLI" wg set "$ifc" private-key "$BENCH_TMP/wg-c.key" \
    peer "$spub" endpoint 10.77.0.1:51820 allowed-ips 10.78.0.1/32
  in_ns "$SRV" ip addr add 10.78.0.1/24 dev "$ifs"
  in_ns "$CLI" ip addr add 10.78.0.2/24 dev "$ifc"
  # wg-quick's MTU for an IPv4 underlay of 1500.
  in_ns "$SRV" ip link set "$ifs" mtu 1420 up
  in_ns "$CLI" ip link set "$ifc" mtu 1420 up
  wait_for 10 in_ns "$CLI" ping -c 1 -W 1 10.78.0.1 || die "no ping through boringtun"
  log "boringtun up ($("$BORINGTUN" --version))"
}

stop_boringtun() {
  stop_pid "$CLI_PID"
  stop_pid "$SRV_PID"
  SRV_PID="" CLI_PID=""
  rm -f "/var/run/wireguard/$WG_IFS.sock" "/var/run/wireguard/$WG_IFC.sock"
}

restart_boringtun() {
  stop_boringtun
  start_boringtun
}

bench_boringtun() {
  start_boringtun
  run_tests boringtun 10.78.0.1 restart_boringtun
  stop_boringtun
}

start_iperf_server
for p in $PATHS; do
  case "$p" in
    veth) bench_veth ;;
    virtgate-mppe) bench_virtgate require virtgate-mppe ;;
    virtgate-nomppe) bench_virtgate off virtgate-nomppe ;;
    boringtun) bench_boringtun ;;
    *) die "unknown path $p" ;;
  esac
done
stop_pid "$IPERF_PID"

# ---- the table ----------------------------------------------------------------------------
python3 - "$RESULTS" "$DURATION" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
val = {(r[0], r[1]): float(r[2]) for r in rows}

def cost(r):
    """CPU time both tunnel ends spent per unit moved: s/GB (TCP) or us/packet (UDP)."""
    v, unit, s, c = float(r[2]), r[3], r[4], r[5]
    if s == "-" or c == "-" or v != v or v == 0:
        return None
    cores = (float(s) + float(c)) / 100
    return cores / (v / 8) if unit == "Gbit/s" else cores / v * 1e6

costs = {(r[0], r[1]): cost(r) for r in rows}

def ratio(path, test, base):
    b = val.get((base, test)); v = val.get((path, test))
    if b is None or v is None or b != b or v != v or b == 0 or path == base:
        return "-"
    return f"{v / b:.2f}x"

def fmt(v, unit):
    if v != v:
        return "failed"
    return f"{v:.3f} Gbit/s" if unit == "Gbit/s" else f"{v / 1000:.0f} kpps"

print(f"\niperf3 -t {sys.argv[2]} (TCP: -O 1; UDP: -l 64 -b 0, packets received per second)")
print("cpu%: process CPU time / wall time (100 = one core); tunnel cpu: CPU time of both tunnel")
print("ends per GB (TCP) or per delivered packet (UDP); cpu vs bt: boringtun's cost / ours (>1: cheaper)")
print(f"{'test':<11} {'path':<24} {'result':>14} {'vs boringtun':>12} {'vs veth':>8} "
      f"{'srv cpu%':>8} {'cli cpu%':>8} {'tunnel cpu':>12} {'cpu vs bt':>9}  notes")
order = []
for r in rows:
    if r[1] not in order:
        order.append(r[1])
for t in order:
    for r in rows:
        if r[1] != t:
            continue
        path, test, v, unit, scpu, ccpu = r[:6]
        note = r[6] if len(r) > 6 else ""
        c = costs.get((path, test))
        cs = "-" if c is None else (f"{c:.2f} s/GB" if unit == "Gbit/s" else f"{c:.1f} us/pkt")
        b = costs.get(("boringtun", test))
        cr = "-" if c is None or b is None or path == "boringtun" else f"{b / c:.2f}x"
        print(f"{test:<11} {path:<24} {fmt(float(v), unit):>14} {ratio(path, test, 'boringtun'):>12} "
              f"{ratio(path, test, 'veth'):>8} {scpu:>8} {ccpu:>8} {cs:>12} {cr:>9}  {note}")
    print()
PY
