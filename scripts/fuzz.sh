#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a given time each and prints a summary
# row per target: executions, coverage, corpus size, and the crash file if one was found.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]      (default 60 s, every target)
#
# Inputs: the committed seeds (fuzz/seeds/<target>, including the regression inputs of
# earlier crashes) and what earlier runs learnt (fuzz/corpus/<target>, not committed).
# A crash stops that target's run; its input is saved under fuzz/artifacts/<target>/
# and the script exits non-zero at the end. SANITIZER=none skips AddressSanitizer
# (faster, still catching panics and overflow); the default uses it and falls back to
# none if this toolchain cannot build it. Long runs: FUZZING.md.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
per="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
sanitizer=(--sanitizer "${SANITIZER:-address}")
if ! cargo fuzz build "${sanitizer[@]}" >/dev/null 2>&1; then
    echo "fuzz.sh: the ${SANITIZER:-address} sanitizer build failed; using --sanitizer none" >&2
    sanitizer=(--sanitizer none)
    cargo fuzz build "${sanitizer[@]}" || exit 1
fi
failed=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    corpora=("corpus/$t")
    if [ -d "seeds/$t" ]; then corpora+=("seeds/$t"); fi
    log="$(mktemp)"
    echo "--- $t: ${per}s" >&2
    cargo fuzz run "${sanitizer[@]}" "$t" "${corpora[@]}" -- \
        -max_total_time="$per" -print_final_stats=1 -rss_limit_mb=4096 >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1)
    crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')
    if [ "$rc" -ne 0 ]; then
        failed=1
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 >&2
    fi
    summary+=("| $t | ${execs:-?} | ${cov:-?} | ${crash:-none} |")
    rm -f "$log"
done
echo
echo "| target | executions | coverage (libFuzzer) | crash |"
echo "|---|---|---|---|"
printf '%s\n' "${summary[@]}"
exit "$failed"
