#!/usr/bin/env bash
# Runs every test virtgate has: formatting and lints, unit and protocol tests, namespace
# integration tests (root), fuzz-corpus replays and the real-peer checks (QEMU guests running
# Linux pppd + pptp-linux against our server). Installs what it needs on a fresh Debian machine.
#
#   scripts/test.sh            everything (needs root for namespaces and the real peers)
#   VIRTGATE_SKIP_NETNS=1 scripts/test.sh   protocol tests only (no root)
set -euo pipefail
cd "$(dirname "$0")/.."

need=""
for p in nftables iproute2 tcpdump python3 procps isc-dhcp-client dnsutils dnsmasq-base freeradius freeradius-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ] && [ "$(id -u)" = 0 ]; then
  echo "test.sh: installing$need"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# The real-peer checks live beside the repository (../shared/realpeer); CI has them.
if [ -d ../shared/realpeer ] && [ "${VIRTGATE_SKIP_NETNS:-0}" != 1 ]; then
  export VIRTGATE_REQUIRE_REALPEER=1
fi

# rustfmt and clippy come with the machine's toolchain; fetch them if a machine lacks them.
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c" >/dev/null 2>&1 || true
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# --all-targets also runs each criterion benchmark once, as a test (no timing).
cargo test --workspace --all-targets --no-fail-fast
cargo test --workspace --doc
