#!/usr/bin/env bash
# Runs the real fuzzer (libFuzzer, through cargo-fuzz) on each target for a while.
#   fuzz/run.sh [SECONDS] [TARGET...]     (default: 600 seconds, every target but the canary)
# New inputs go to $FUZZ_WORK (default /tmp/holdfast-fuzz/TARGET), seeded from the committed
# corpus; crashes go to fuzz/artifacts/TARGET/, where the stable test replays them once
# committed. Each target's libFuzzer log is fuzz/logs/TARGET.log (not committed); the last
# line of each is summarised at the end.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decode relay_session bundle_decode stored_record_decode merge_convergence store_ops)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
work=${FUZZ_WORK:-/tmp/holdfast-fuzz}
mkdir -p logs
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "corpus/$t" "artifacts/$t"
    echo "== $t for ${seconds}s"
    status=0
    cargo fuzz run -O "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1 \
        >"logs/$t.log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    echo "$t: exit $status, $runs executions, corpus $(ls "$work/$t" | wc -l) inputs"
done
