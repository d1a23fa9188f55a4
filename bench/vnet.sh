#!/usr/bin/env bash
# Virtual-network services, virtgate against dnsmasq in the same run (issue 4): DNS queries/s
# (Debian's dnsperf) for the network's own names and for forwarded names, and DHCP leases/s
# (crates/dhcpload: DISCOVER/OFFER/REQUEST/ACK for distinct MACs, a bounded number in flight,
# then RELEASE), with unicast replies (as to ISC dhclient) and with the BROADCAST flag.
#
#   bench/vnet.sh                          everything (needs root)
#   DURATION=10 bench/vnet.sh              dnsperf seconds per test (default 8)
#   CLIENTS=3000 IN_FLIGHT=64 bench/vnet.sh   DHCP clients of the broadcast test (default
#                                          1500), exchanges open at once (default 32)
#   UNICAST_CLIENTS=300 bench/vnet.sh      DHCP clients of the unicast test (default 300; see
#                                          below why it stays small)
#   RELEASE_RATE=200 bench/vnet.sh         DHCPRELEASEs per second after each DHCP test
#   SERVERS="virtgate dnsmasq" bench/vnet.sh   a subset of: virtgate dnsmasq dnsmasq-noping
#                                          (dnsmasq-noping: the same dnsmasq plus --no-ping)
#   TESTS="dns-local dhcp-unicast" bench/vnet.sh   a subset of: dns-local dns-forward
#                                          dns-cached dhcp-unicast dhcp-broadcast
#   PROFILE=1 bench/vnet.sh                also profile virtgate: perf-record its CPU during the
#                                          DNS tests (top symbols), strace its syscalls' wall time
#                                          during the DHCP tests (where it waits)
#   SERVE_BIN=path DHCPLOAD_BIN=path bench/vnet.sh   use these binaries instead of building
#   RESULTS=file.tsv bench/vnet.sh         keep the raw results
#
# Namespaces (all created here, removed on exit):
#   host     the virtualization host: the network's bridge vgbbr0 (10.88.0.1/16, DHCP range
#            10.88.1.1-10.88.199.254, 100 dhcp/host and 100 dns/host names), served by
#            `virtgate-vnet`'s serve example (release build) or by dnsmasq run the way libvirt
#            runs it (the command line of ../shared/realpeer/check-vmnet.sh --reference, plus
#            libvirt's addn-hosts for dns/host and dhcp-lease-max for the range);
#            uplink up0 203.0.113.2/24; its resolv.conf names 203.0.113.1
#   upstream 203.0.113.1: a dnsmasq answering *.example.test with 203.0.113.80 (TTL 0, so
#            never cached: dns-forward measures forwarding) and c1..c100.cached.test with
#            203.0.113.81, TTL 300 (dns-cached: after the first round both servers answer those
#            from their caches; dnsmasq's holds 150 names, as libvirt leaves it, and so does ours)
#   client   cl0 10.88.255.250/16 on a veth port of the bridge: dnsperf and dhcpload run here
# Nothing touches the root namespace's links, addresses, routes or firewall; no packet leaves
# these namespaces. Installs dnsperf, dnsmasq and dig (Debian) when missing.
#
# Unicast replies cost the server a neighbour (ARP) entry per client, and the kernel's ARP table
# is one for all namespaces: past net.ipv4.neigh.default.gc_thresh3 (1024 by default) entries
# younger than 5 s cannot be evicted ("neighbor table overflow"), replies are lost, and every
# other namespace on the machine loses ARP too. So the unicast test stays at a few hundred
# clients; the broadcast test, which adds no entries, carries the volume.
#
# dnsmasq as libvirt runs it pings each address before offering it for the first time and serves
# no DHCP until the echo comes or 3 s pass (PING_WAIT; a guest without an address never answers;
# up to about 6 such pings per 30 s). dnsmasq-noping is the same command line plus --no-ping: the
# rate of dnsmasq's DHCP code itself.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DURATION="${DURATION:-8}"
CLIENTS="${CLIENTS:-1500}"
UNICAST_CLIENTS="${UNICAST_CLIENTS:-300}"
RELEASE_RATE="${RELEASE_RATE:-200}"
IN_FLIGHT="${IN_FLIGHT:-32}"
HOSTS="${HOSTS:-100}"
FWD_NAMES="${FWD_NAMES:-20000}"
CACHED_NAMES="${CACHED_NAMES:-100}"
SERVERS="${SERVERS:-virtgate dnsmasq dnsmasq-noping}"
TESTS="${TESTS:-dns-local dns-forward dns-cached dhcp-unicast dhcp-broadcast}"
PROFILE="${PROFILE:-0}"

BRIDGE=vgbbr0
NET_ADDR=10.88.0.1
RANGE_START=10.88.1.1
RANGE_END=10.88.199.254
RANGE_SIZE=$((199 * 256 - 2))
CLIENT_ADDR=10.88.255.250

need_root
need_cmd dnsperf dnsperf
need_cmd dnsmasq dnsmasq
need_cmd dig bind9-dnsutils
need_cmd python3 python3
need_cmd bridge iproute2
if [ "$PROFILE" = 1 ]; then need_cmd perf linux-perf; need_cmd strace strace; fi

TARGET="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
if [ -z "${SERVE_BIN:-}" ]; then
  log "building the vnet serve example (release) in $TARGET"
  (cd "$REPO_DIR" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p virtgate-vnet --example serve) >&2
  SERVE_BIN="$TARGET/release/examples/serve"
fi
if [ -z "${DHCPLOAD_BIN:-}" ]; then
  log "building dhcpload (release) in $TARGET"
  (cd "$REPO_DIR" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p virtgate-dhcpload) >&2
  DHCPLOAD_BIN="$TARGET/release/dhcpload"
fi
[ -x "$SERVE_BIN" ] || die "$SERVE_BIN is not executable"
[ -x "$DHCPLOAD_BIN" ] || die "$DHCPLOAD_BIN is not executable"

HOST_NS=""
vnet_cleanup() {
  bench_cleanup
  [ -n "$HOST_NS" ] && rm -rf "/etc/netns/$HOST_NS"
  return 0
}
trap vnet_cleanup EXIT
trap 'exit 130' INT TERM
bench_tmp
# dnsmasq reads its hosts files after dropping privileges.
chmod 755 "$BENCH_TMP"
RESULTS="${RESULTS:-$BENCH_TMP/results.tsv}"
: >"$RESULTS"

# ---- namespaces ----------------------------------------------------------------------------
new_netns host
HOST_NS=$NEW_NETNS
new_netns up
UP_NS=$NEW_NETNS
new_netns cli
CLI_NS=$NEW_NETNS
veth_pair "$HOST_NS" up0 203.0.113.2/24 "$UP_NS" wan0 203.0.113.1/24
ip -n "$HOST_NS" route add default via 203.0.113.1
mkdir -p "/etc/netns/$HOST_NS"
echo "nameserver 203.0.113.1" >"/etc/netns/$HOST_NS/resolv.conf"
# The client's port into the bridge; enslaved once a server has made the bridge.
ip link add cl0 netns "$CLI_NS" type veth peer name vport0 netns "$HOST_NS"
ip -n "$CLI_NS" addr add "$CLIENT_ADDR/16" dev cl0
ip -n "$CLI_NS" link set cl0 up
log "namespaces $HOST_NS (server), $UP_NS (upstream DNS), $CLI_NS (client); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# CACHED_NAMES names with a TTL of 300 s (host-record), which both servers may cache.
cached_records=()
for i in $(seq 1 "$CACHED_NAMES"); do cached_records+=("--host-record=c$i.cached.test,203.0.113.81,300"); done
spawn "$UP_NS" "$BENCH_TMP/upstream.log" dnsmasq --keep-in-foreground --log-facility=- \
  --no-resolv --no-hosts --bind-interfaces --listen-address=203.0.113.1 \
  --address=/example.test/203.0.113.80 "${cached_records[@]}" --pid-file="$BENCH_TMP/upstream.pid"
UP_PID=$SPAWNED_PID
wait_for 5 sh -c "ip netns exec $UP_NS ss -lun | grep -q '203.0.113.1:53 '" \
  || die "upstream dnsmasq did not start: $(tail -3 "$BENCH_TMP/upstream.log")"

# ---- the network, for both servers ---------------------------------------------------------
[ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 250 ] || die "HOSTS must be 1..250"
dhcp_host_ip() { echo "10.88.200.$1"; }
dns_host_ip() { echo "10.88.201.$1"; }
# Reserved MACs are the ones dhcpload --mac-tag 72 gives its clients 1..HOSTS, so the reserved
# guests can be brought up before the DNS tests: dnsmasq publishes a dhcp/host name only while
# its host holds a lease (virtgate publishes it from the definition).
RESERVED_TAG=72
reserved_mac() { printf '02:%02x:00:00:00:%02x' "$RESERVED_TAG" "$1"; }
{
  echo "<network>"
  echo "  <name>bench</name>"
  echo "  <forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>"
  echo "  <bridge name='$BRIDGE' stp='on' delay='0'/>"
  echo "  <mac address='52:54:00:88:00:01'/>"
  echo "  <dns>"
  for i in $(seq 1 "$HOSTS"); do
    echo "    <host ip='$(dns_host_ip "$i")'><hostname>dnshost$i</hostname></host>"
  done
  echo "  </dns>"
  echo "  <ip address='$NET_ADDR' netmask='255.255.0.0'>"
  echo "    <dhcp>"
  echo "      <range start='$RANGE_START' end='$RANGE_END'/>"
  for i in $(seq 1 "$HOSTS"); do
    printf "      <host mac='%s' name='dhcphost%d' ip='%s'/>\n" "$(reserved_mac "$i")" "$i" "$(dhcp_host_ip "$i")"
  done
  echo "    </dhcp>"
  echo "  </ip>"
  echo "</network>"
} >"$BENCH_TMP/bench.xml"
# What libvirt writes for the same definition: <dhcp><host> into NAME.hostsfile, <dns><host>
# into NAME.addnhosts.
for i in $(seq 1 "$HOSTS"); do
  printf '%s,%s,dhcphost%d\n' "$(reserved_mac "$i")" "$(dhcp_host_ip "$i")" "$i"
done >"$BENCH_TMP/bench.hostsfile"
for i in $(seq 1 "$HOSTS"); do
  printf '%s dnshost%d\n' "$(dns_host_ip "$i")" "$i"
done >"$BENCH_TMP/bench.addnhosts"

# dnsperf inputs: the network's own names (half dhcp/host, half dns/host), and names only the
# upstream knows.
for i in $(seq 1 "$HOSTS"); do
  printf 'dhcphost%d A\ndnshost%d A\n' "$i" "$i"
done >"$BENCH_TMP/q-local"
for i in $(seq 1 "$FWD_NAMES"); do printf 'q%d.example.test A\n' "$i"; done >"$BENCH_TMP/q-forward"
for i in $(seq 1 "$CACHED_NAMES"); do printf 'c%d.cached.test A\n' "$i"; done >"$BENCH_TMP/q-cached"

# ---- servers -------------------------------------------------------------------------------
SRV_PID=""
SRV_STATE=""
start_virtgate() {
  SRV_STATE="$BENCH_TMP/state-virtgate"
  mkdir -p "$SRV_STATE"
  spawn "$HOST_NS" "$BENCH_TMP/server-virtgate.log" env RUST_LOG=warn "$SERVE_BIN" "$BENCH_TMP/bench.xml" "$SRV_STATE"
  SRV_PID=$SPAWNED_PID
}

# start_dnsmasq NAME [EXTRA_FLAG...]
start_dnsmasq() {
  local name=$1; shift
  SRV_STATE="$BENCH_TMP/state-$name"
  mkdir -p "$SRV_STATE"
  chmod 755 "$SRV_STATE"
  # As check-vmnet.sh --reference sets up libvirt's default network (bridge, address,
  # forwarding, masquerade, dnsmasq), for this definition.
  cat >"$BENCH_TMP/ref.sh" <<EOT
set -e
ip link add $BRIDGE type bridge stp_state 1 forward_delay 0
ip link set $BRIDGE address 52:54:00:88:00:01
ip addr add $NET_ADDR/16 dev $BRIDGE
ip link set $BRIDGE up
sysctl -qw net.ipv4.ip_forward=1
nft -f - <<'NFT'
table ip libvirt_network {
  chain guest_nat { type nat hook postrouting priority 100; policy accept;
    ip saddr 10.88.0.0/16 ip daddr 224.0.0.0/24 return
    ip saddr 10.88.0.0/16 ip daddr 255.255.255.255 return
    meta l4proto tcp ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade to :1024-65535
    meta l4proto udp ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade to :1024-65535
    ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade
  }
}
NFT
exec dnsmasq --keep-in-foreground --log-facility=- --pid-file=$SRV_STATE/dnsmasq.pid \\
  --strict-order --except-interface=lo --bind-dynamic --interface=$BRIDGE \\
  --dhcp-range=$RANGE_START,$RANGE_END,255.255.0.0 --dhcp-no-override --dhcp-authoritative \\
  --dhcp-lease-max=$((RANGE_SIZE + HOSTS)) --dhcp-hostsfile=$BENCH_TMP/bench.hostsfile \\
  --addn-hosts=$BENCH_TMP/bench.addnhosts --dhcp-leasefile=$SRV_STATE/bench.leases $*
EOT
  spawn "$HOST_NS" "$BENCH_TMP/server-$name.log" sh "$BENCH_TMP/ref.sh"
  SRV_PID=$SPAWNED_PID
}

port_forwarding() { bridge -n "$HOST_NS" link show dev vport0 | grep -q 'state forwarding'; }
# virtgate's sockets are tied to the bridge: ss shows them as 10.88.0.1%vgbbr0:53.
dns_listening() { in_ns "$HOST_NS" ss -lun | grep -Eq "${NET_ADDR//./\\.}(%[^:]*)?:53 "; }

start_server() {
  local name=$1
  case $name in
    virtgate) start_virtgate;;
    dnsmasq) start_dnsmasq dnsmasq;;
    dnsmasq-noping) start_dnsmasq dnsmasq-noping --no-ping;;
    *) die "unknown server $name";;
  esac
  wait_for 20 dns_listening || die "$name did not come up: $(tail -5 "$BENCH_TMP/server-$name.log")"
  ip -n "$HOST_NS" link set vport0 master "$BRIDGE"
  ip -n "$HOST_NS" link set vport0 up
  # STP on: the port learns for a forward delay before it forwards.
  wait_for 40 port_forwarding || die "bridge port vport0 never forwarded"
  log "$name is serving (pid $SRV_PID)"
}

stop_server() {
  local name=$1
  stop_pid "$SRV_PID" TERM
  SRV_PID=""
  if [ "$name" != virtgate ]; then
    # What libvirt undoes for it; the serve example removes its own bridge and rules.
    ip -n "$HOST_NS" link del "$BRIDGE" 2>/dev/null || true
    ip netns exec "$HOST_NS" nft delete table ip libvirt_network 2>/dev/null || true
  fi
  wait_for 10 sh -c "! ip -n $HOST_NS link show $BRIDGE" || die "bridge $BRIDGE left behind by $name"
}

# ---- profiling (virtgate only) -------------------------------------------------------------
PERF_PID=""
perf_start() {
  [ "$PROFILE" = 1 ] && [ "$1" = virtgate ] || return 0
  case $2 in
    dhcp-*)
      # The DHCP side mostly waits (CPU stays low): where the wall time goes is in syscalls.
      strace -f -c -w -S time -p "$SRV_PID" -o "$BENCH_TMP/strace.$2.txt" >/dev/null 2>&1 &
      ;;
    *)
      perf record -q -e cpu-clock -F 2000 -g -p "$SRV_PID" -o "$BENCH_TMP/perf.$2.data" \
        >/dev/null 2>&1 &
      ;;
  esac
  PERF_PID=$!
  sleep 0.5
}
perf_stop() {
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID" 2>/dev/null || true
  wait "$PERF_PID" 2>/dev/null || true
  PERF_PID=""
  if [ -f "$BENCH_TMP/strace.$1.txt" ]; then
    {
      echo "=== strace -f -c -w: virtgate serve during $1 (syscall wall time, all threads) ==="
      head -14 "$BENCH_TMP/strace.$1.txt"
    } >>"$BENCH_TMP/profile.txt"
    return 0
  fi
  {
    echo "=== perf: virtgate serve during $1 (self time, top symbols) ==="
    perf report -i "$BENCH_TMP/perf.$1.data" --no-children --stdio --sort symbol \
      --percent-limit 1.5 2>/dev/null | grep -v '^#' | grep -v '^$' | grep '%' | head -25
    echo "=== perf: by shared object ==="
    perf report -i "$BENCH_TMP/perf.$1.data" --no-children --stdio --sort dso 2>/dev/null \
      | grep -v '^#' | grep '%' | head -8
  } >>"$BENCH_TMP/profile.txt"
}

# ---- tests ---------------------------------------------------------------------------------
# result SERVER TEST KEY VALUE
result() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# The answer's first A record, as the client sees it.
ask() { in_ns "$CLI_NS" dig +short +time=2 +tries=2 "@$NET_ADDR" "$1" A | head -1; }

# The reserved guests (and one more from the range) take their leases, as running guests
# would; they keep them through the run.
bring_up_reserved() {
  local name=$1
  local out="$BENCH_TMP/$name.reserved.dhcpload"
  in_ns "$CLI_NS" "$DHCPLOAD_BIN" --iface cl0 --clients $((HOSTS + 1)) --in-flight 8 \
    --mac-tag "$RESERVED_TAG" --no-hostname --no-release --retransmit-ms 1000 --attempts 20 \
    >"$out" 2>&1 \
    || die "$name: reserved guests got no leases: $(tail -3 "$out")"
  grep -q "^leased=$((HOSTS + 1))\$" "$out" || die "$name: reserved guests: $(tr '\n' ' ' <"$out")"
}

check_names() {
  local name=$1 got
  for q in dhcphost1:"$(dhcp_host_ip 1)" "dnshost$HOSTS:$(dns_host_ip "$HOSTS")" q1.example.test:203.0.113.80; do
    got="$(ask "${q%%:*}")"
    [ "$got" = "${q#*:}" ] || die "$name answers ${q%%:*} with '$got', not ${q#*:}"
  done
}

run_dns() {
  local name=$1 test=$2 file out cpu0 cpu1 up0 up1 t0 t1
  case $test in
    dns-local) file="$BENCH_TMP/q-local";;
    dns-forward) file="$BENCH_TMP/q-forward";;
    dns-cached) file="$BENCH_TMP/q-cached";;
  esac
  out="$BENCH_TMP/$name.$test.dnsperf"
  cpu0=$(cpu_seconds "$SRV_PID"); up0=$(cpu_seconds "$UP_PID"); t0=$(date +%s.%N)
  perf_start "$name" "$test"
  in_ns "$CLI_NS" dnsperf -s "$NET_ADDR" -d "$file" -l "$DURATION" -t 2 >"$out" 2>&1 \
    || log "$name $test: dnsperf failed: $(tail -3 "$out")"
  perf_stop "$test"
  cpu1=$(cpu_seconds "$SRV_PID"); up1=$(cpu_seconds "$UP_PID"); t1=$(date +%s.%N)
  local qps lost codes
  qps=$(sed -n 's/^ *Queries per second: *\([0-9.]*\).*/\1/p' "$out")
  lost=$(sed -n 's/^ *Queries lost: *[0-9]* (\([0-9.]*\)%).*/\1/p' "$out")
  codes=$(sed -n 's/^ *Response codes: *//p' "$out")
  result "$name" "$test" rate "${qps:-0}"
  result "$name" "$test" lost_pct "${lost:-100}"
  result "$name" "$test" rcodes "${codes:--}"
  result "$name" "$test" cpu_pct "$(python3 -c "print(round(100*($cpu1-$cpu0)/($t1-$t0)))")"
  local done_q
  done_q=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' "$out")
  result "$name" "$test" cpu_us_per_op "$(python3 -c "print(round(1e6*($cpu1-$cpu0)/max(${done_q:-0},1), 1))")"
  result "$name" "$test" upstream_cpu_pct "$(python3 -c "print(round(100*($up1-$up0)/($t1-$t0)))")"
  log "$name $test: ${qps:-?} queries/s, lost ${lost:-?}%, $codes"
}

run_dhcp() {
  local name=$1 test=$2 flags=() tag clients out cpu0 cpu1 t0 t1
  case $test in
    dhcp-unicast) tag=76; clients=$UNICAST_CLIENTS;;
    dhcp-broadcast) tag=66; clients=$CLIENTS; flags=(--broadcast);;
  esac
  out="$BENCH_TMP/$name.$test.dhcpload"
  cpu0=$(cpu_seconds "$SRV_PID"); t0=$(date +%s.%N)
  perf_start "$name" "$test"
  # Retransmission every second, ten tries: dnsmasq stalls its DHCP side for up to 3 s while it
  # pings a new address (see the top of this file); clients must outlast that as dhclient does.
  in_ns "$CLI_NS" "$DHCPLOAD_BIN" --iface cl0 --clients "$clients" --in-flight "$IN_FLIGHT" \
    --mac-tag "$tag" --retransmit-ms 1000 --attempts 10 --release-rate "$RELEASE_RATE" \
    "${flags[@]}" >"$out" 2>"$out.err" \
    || log "$name $test: dhcpload failed: $(tail -3 "$out.err")"
  perf_stop "$test"
  cpu1=$(cpu_seconds "$SRV_PID"); t1=$(date +%s.%N)
  get() { sed -n "s/^$1=//p" "$out"; }
  result "$name" "$test" rate "$(get leases_per_s)"
  for k in leased failed naks retransmits latency_p50_ms latency_p99_ms released; do
    result "$name" "$test" "$k" "$(get $k)"
  done
  result "$name" "$test" cpu_pct "$(python3 -c "print(round(100*($cpu1-$cpu0)/($t1-$t0)))")"
  local leased
  leased=$(get leased)
  # Leasing and releasing: CPU per lease covers both.
  result "$name" "$test" cpu_us_per_op "$(python3 -c "print(round(1e6*($cpu1-$cpu0)/max(${leased:-0},1), 1))")"
  # The releases must have reached the server: count this test's clients still in the leases
  # file (both servers rewrite it after every change) once it has not shrunk for 3 s.
  local mac_prefix left prev=-1 same=0 i
  mac_prefix=$(printf '02:%02x:' "$tag")
  for i in $(seq 1 60); do
    sleep 1
    left=$(grep -c " $mac_prefix" "$SRV_STATE/bench.leases" 2>/dev/null || true)
    [ "${left:-0}" = 0 ] && break
    if [ "$left" = "$prev" ]; then same=$((same + 1)); else same=0; fi
    [ "$same" -ge 3 ] && break
    prev=$left
  done
  result "$name" "$test" left_after_release "${left:-0}"
  log "$name $test: $(get leases_per_s) leases/s ($(get leased)/$clients leased, $(get failed) failed, $(get retransmits) retransmitted, p50 $(get latency_p50_ms) ms, p99 $(get latency_p99_ms) ms), $left left after RELEASE"
}

for server in $SERVERS; do
  start_server "$server"
  bring_up_reserved "$server"
  check_names "$server"
  for t in $TESTS; do
    case $t in
      dns-*) run_dns "$server" "$t";;
      dhcp-*) run_dhcp "$server" "$t";;
      *) die "unknown test $t";;
    esac
  done
  stop_server "$server"
done

# ---- the table -----------------------------------------------------------------------------
python3 - "$RESULTS" "$DURATION" "$CLIENTS" "$IN_FLIGHT" "$HOSTS" "$FWD_NAMES" "$UNICAST_CLIENTS" <<'PY'
import sys
from collections import defaultdict
path, duration, clients, in_flight, hosts, fwd, unicast = sys.argv[1:]
r = defaultdict(dict)
for line in open(path):
    server, test, key, value = line.rstrip("\n").split("\t", 3)
    r[(server, test)][key] = value
tests = []
for (s, t) in r:
    if t not in tests:
        tests.append(t)
label = {
    "dns-local": "DNS, network's own names (queries/s)",
    "dns-forward": "DNS, forwarded names (queries/s)",
    "dns-cached": "DNS, forwarded names with TTL 300 (queries/s)",
    "dhcp-unicast": "DHCP DORA, unicast replies (leases/s)",
    "dhcp-broadcast": "DHCP DORA, BROADCAST flag (leases/s)",
}
def num(s, t, k="rate"):
    try:
        return float(r[(s, t)][k])
    except (KeyError, ValueError):
        return None
noping = any(s == "dnsmasq-noping" for (s, _) in r)
head = ["test", "virtgate", "dnsmasq", "ratio"]
if noping:
    head += ["dnsmasq --no-ping", "ratio"]
rows = [tuple(head)]
fmt = lambda x: "-" if x is None else f"{x:,.0f}"
ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b else "-"
for t in tests:
    a, b = num("virtgate", t), num("dnsmasq", t)
    row = [label.get(t, t), fmt(a), fmt(b), ratio(a, b)]
    if noping:
        c = num("dnsmasq-noping", t)
        row += [fmt(c), ratio(a, c)]
    rows.append(tuple(row))
n = len(head)
w = [max(len(row[i]) for row in rows) for i in range(n)]
print()
print("| " + " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(rows[0])) + " |")
print("|" + "|".join(("-" * (w[i] + 2)) if i == 0 else ("-" * (w[i] + 1) + ":") for i in range(n)) + "|")
for row in rows[1:]:
    print("| " + " | ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)) + " |")
print(f"\nratio = virtgate / the column before it (above 1: virtgate faster). dnsperf -l {duration} (100 queries in flight, "
      f"{2 * int(hosts)} local names, {fwd} forwarded names); dhcpload {unicast} (unicast) / {clients} (broadcast) clients, {in_flight} in flight.")
print("\ndetails (CPU % = server process CPU time / wall time, 100 = one core):")
for t in tests:
    for s in ("virtgate", "dnsmasq", "dnsmasq-noping"):
        d = r.get((s, t))
        if not d:
            continue
        if t.startswith("dns"):
            extra = f"lost {d.get('lost_pct')}%, {d.get('rcodes')}, upstream CPU {d.get('upstream_cpu_pct')}%"
        else:
            extra = (f"leased {d.get('leased')}, failed {d.get('failed')}, NAKs {d.get('naks')}, "
                     f"retransmits {d.get('retransmits')}, p50 {d.get('latency_p50_ms')} ms, "
                     f"p99 {d.get('latency_p99_ms')} ms, released {d.get('released')}, "
                     f"left after release {d.get('left_after_release')}")
        per = "query" if t.startswith("dns") else "lease"
        print(f"  {t:15} {s:14} CPU {d.get('cpu_pct', '-'):>3}%, {d.get('cpu_us_per_op', '-'):>6} us/{per}; {extra}")
PY
[ -s "$BENCH_TMP/profile.txt" ] && { echo; cat "$BENCH_TMP/profile.txt"; }
log "done"
