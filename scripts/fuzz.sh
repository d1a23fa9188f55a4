#!/usr/bin/env bash
# Time-boxed fuzzing of every cargo-fuzz target in fuzz/ (libFuzzer), one target at a time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s each, every target
#
# Runs on the stable toolchain: cargo-fuzz needs nightly-only rustc flags (-Cpasses=sancov,
# -Zsanitizer), which RUSTC_BOOTSTRAP=1 unlocks on stable. Installs cargo-fuzz if missing.
# Builds with debug assertions and overflow checks and without a sanitizer (the code under
# test has no `unsafe`; ASan would only halve the executions).
#
# Each target starts from fuzz/corpus/<target>/ (read-only; new finds go to a scratch corpus in
# fuzz/target/scratch-corpus/<target>/). Prints one line per target: executions, seconds,
# crashes, new corpus units, and the crash file if any (libFuzzer stops at the first crash and
# saves it in fuzz/artifacts/<target>/). Full logs: fuzz/target/fuzz-logs/<target>.log.
# Exit status 1 if any target crashed.
#
# A crash becomes a regression test: minimise it
#   RUSTC_BOOTSTRAP=1 cargo fuzz tmin -s none <target> fuzz/artifacts/<target>/crash-...
# and copy the result to fuzz/regressions/<target>/; `cargo test -p virtgate-fuzzing` replays
# it (list it in fuzz/regressions/known-failures.txt until the bug is fixed).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
case "$secs" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
# The stable toolchain, whatever rustup's default or a rust-toolchain file says.
toolchain=()
if command -v rustup >/dev/null 2>&1 && [ -z "${RUSTUP_TOOLCHAIN:-}" ]; then
  toolchain=(+stable)
fi
flags=(-s none)

cd fuzz
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

echo "fuzz.sh: building ${#targets[@]} targets" >&2
cargo "${toolchain[@]}" fuzz build "${flags[@]}" >&2

mkdir -p target/fuzz-logs
printf '%-28s %12s %6s %8s %6s\n' target executions secs crashes new
status=0
for t in "${targets[@]}"; do
  scratch="target/scratch-corpus/$t"
  mkdir -p "$scratch" "artifacts/$t"
  log="target/fuzz-logs/$t.log"
  before=$(find "artifacts/$t" -type f | wc -l)
  start=$(date +%s)
  set +e
  cargo "${toolchain[@]}" fuzz run "${flags[@]}" "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  after=$(find "artifacts/$t" -type f | wc -l)
  crashes=$(( after - before ))
  if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then
    crashes=1 # a crash libFuzzer could not save, or a build/run failure: see the log
  fi
  printf '%-28s %12s %6s %8s %6s' "$t" "${execs:-?}" "$elapsed" "$crashes" "${new:-?}"
  if [ "$crashes" != 0 ]; then
    status=1
    newest=$(ls -t "artifacts/$t" 2>/dev/null | head -1)
    printf '  %s' "${newest:+fuzz/artifacts/$t/$newest} (log: fuzz/$log)"
  fi
  printf '\n'
done
exit "$status"
