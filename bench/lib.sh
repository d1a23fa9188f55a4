# Shared helpers for bench/*.sh (sourced, not run). Everything a benchmark starts lives in
# network namespaces it creates itself; nothing here touches the root namespace's addresses,
# routes or firewall, and no packet leaves those namespaces.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
# Where boringtun-cli is installed when missing (outside the repository).
BENCH_CACHE="${BENCH_CACHE:-/var/cache/virtgate-bench}"

# Namespaces this run created, for the exit trap.
BENCH_NETNS=()
BENCH_TMP=""

log() { printf '%s %s\n' "[$(date +%T)]" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, TUN devices, raw GRE sockets)"
}

# apt-get install PACKAGE unless COMMAND exists.
need_cmd() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $pkg (for $cmd)"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $pkg"
}

# The virtgate binary: $VIRTGATE_BIN, or a release build of this checkout.
virtgate_bin() {
  if [ -n "${VIRTGATE_BIN:-}" ]; then
    [ -x "$VIRTGATE_BIN" ] || die "VIRTGATE_BIN=$VIRTGATE_BIN is not executable"
    printf '%s\n' "$VIRTGATE_BIN"
    return
  fi
  local target="${CARGO_TARGET_DIR:-$REPO_DIR/target}"
  log "building virtgate (release) in $target"
  (cd "$REPO_DIR" && CARGO_TARGET_DIR="$target" cargo build --release -q -p virtgate) >&2
  printf '%s\n' "$target/release/virtgate"
}

bench_tmp() {
  BENCH_TMP="$(mktemp -d /tmp/virtgate-bench.XXXXXX)"
}

# new_netns TAG: creates vgb-TAG-PID with lo up, sets NEW_NETNS to its name and registers it
# for cleanup (not for $(...), which would lose the registration).
NEW_NETNS=""
new_netns() {
  NEW_NETNS="vgb-$1-$$"
  BENCH_NETNS+=("$NEW_NETNS")
  ip netns add "$NEW_NETNS"
  ip -n "$NEW_NETNS" link set lo up
}

# veth between two namespaces: NS_A IF_A ADDR_A NS_B IF_B ADDR_B (MTU 1500).
veth_pair() {
  ip link add "$2" netns "$1" mtu 1500 type veth peer name "$5" netns "$4" mtu 1500
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

# in_ns NS CMD...: run inside a namespace.
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# spawn NS LOGFILE CMD...: start in the background inside NS and set SPAWNED_PID (ip netns
# exec execs the command, so the pid is the program's own). Not for $(...): the process must be
# this shell's child.
SPAWNED_PID=""
spawn() {
  local ns=$1 logf=$2; shift 2
  ip netns exec "$ns" "$@" </dev/null >"$logf" 2>&1 &
  SPAWNED_PID=$!
}

# alive PID: running (a zombie waiting to be reaped is not).
alive() {
  local st
  st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop_pid PID [SIGNAL]: signal one of our children, wait for it (2 s, then SIGKILL) and reap it.
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  if alive "$pid"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
      alive "$pid" || break
      sleep 0.05
    done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
}

# CPU seconds a process (all its threads) used so far: the run time in nanoseconds the
# scheduler keeps per thread (/proc/PID/task/TID/schedstat), finer than utime/stime's ticks.
cpu_seconds() {
  local pid=$1
  cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{ ns += $1 } END { printf "%.6f\n", ns / 1e9 }'
}

# Resident set size of a process in KiB.
rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
  local t=$1 i; shift
  for i in $(seq 1 $((t * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

listening_1723() { in_ns "$1" ss -ltn | grep -q ':1723 '; }

# The pppd options and pptpd.conf the daemon runs with. mppe: require | off; EXTRA: more
# pppd option lines.
# write_pptpd_config DIR MPPE REMOTEIP CONNECTIONS [EXTRA]
write_pptpd_config() {
  local dir=$1 mppe=$2 remote=$3 conns=$4 extra=${5:-}
  local mppe_line="require-mppe-128"
  [ "$mppe" = off ] && mppe_line="nomppe"
  printf 'name pptpd\nrefuse-pap\nrefuse-chap\nrefuse-mschap\nrequire-mschap-v2\n%s\nnobsdcomp\nnovj\nnovjccomp\n%s' \
    "$mppe_line" "$extra" >"$dir/options.$mppe"
  printf 'option %s\nlocalip 192.168.77.1\nremoteip %s\nconnections %s\n' \
    "$dir/options.$mppe" "$remote" "$conns" >"$dir/pptpd.$mppe.conf"
  printf 'user1\tpptpd\tpassword1\t*\n' >"$dir/chap-secrets"
  chmod 600 "$dir/chap-secrets"
}

bench_cleanup() {
  local pid ns
  # Our own children still running (unreaped, so their pids cannot belong to anyone else).
  for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${BENCH_NETNS[@]:-}"; do
    [ -n "$ns" ] || continue
    # Anything left inside one of our namespaces was started by this run.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "$BENCH_TMP" ] && rm -rf "$BENCH_TMP"
  return 0
}
