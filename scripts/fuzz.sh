#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/): builds them with clang-19 and
# -fsanitize=fuzzer,address,undefined into build-fuzz/ (or $FUZZ_BUILD_DIR),
# only the libraries they need, then runs each for BPFGATE_FUZZ_SECONDS
# (default 20) from its seeds in tests/fuzz/TARGET/, one per CPU at a time. New inputs
# go to build-fuzz/corpus/TARGET/ (kept between runs, never the repository's
# seeds); a crash is kept in build-fuzz/crashes/TARGET/ and fails the run.
#   scripts/fuzz.sh                     every target (scripts/test.sh runs this)
#   scripts/fuzz.sh config packet       those targets
#   scripts/fuzz.sh --list              the targets' names
# The packet target loads a BPF program: run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS=(config prefix_file control packet)
if [ "${1:-}" = --list ]; then
  printf '%s\n' "${TARGETS[@]}"
  exit 0
fi
chosen=("$@")
[ ${#chosen[@]} -gt 0 ] || chosen=("${TARGETS[@]}")
for t in "${chosen[@]}"; do
  [[ " ${TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: no target '$t' (${TARGETS[*]})" >&2; exit 2; }
done
seconds="${BPFGATE_FUZZ_SECONDS:-20}"
dir="${FUZZ_BUILD_DIR:-build-fuzz}"
start=$SECONDS
# -O1 and line tables only, the usual flags for fuzzing (quicker to build under
# the sanitizers than -O2 -g); without NDEBUG, so assertions stay on.
CC=clang-19 CXX=clang++-19 cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DBPFGATE_FUZZ=ON -DBPFGATE_TESTS=OFF -DBPFGATE_BENCH=OFF >/dev/null
if ! cmake --build "$dir" --target "${chosen[@]/#/fuzz_}" -j"$(nproc)" >"$dir/build.log" 2>&1; then
  tail -50 "$dir/build.log"
  echo "fuzz: the build failed ($dir/build.log)" >&2
  exit 1
fi
echo "fuzz: built in $((SECONDS - start)) s; running ${chosen[*]} for ${seconds} s each"

# run TARGET: one target for $seconds; its last lines and a summary line.
run() {
  local t=$1 log="$dir/fuzz/$1.log" extra=()
  mkdir -p "$dir/corpus/$t" "$dir/crashes/$t"
  [ -f "tests/fuzz/$t.dict" ] && extra+=(-dict="tests/fuzz/$t.dict")
  local rc=0
  "$dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$dir/crashes/$t/" "${extra[@]}" "$dir/corpus/$t" "tests/fuzz/$t" \
    >"$log" 2>&1 || rc=$?
  local execs cov ft
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (exit $rc): the input is in $dir/crashes/$t/ (and in Base64 above);" \
         "keep it in tests/fuzz/$t/ and add a test in tests/unit that feeds it, with the fix"
    return 1
  fi
  echo "fuzz: $t ok: ${execs:-?} runs in ${seconds} s ($(( ${execs:-0} / seconds )) exec/s), $cov, $ft"
}

failed=0
pids=()
for t in "${chosen[@]}"; do
  run "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$(nproc)" ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
echo "fuzz: done in $((SECONDS - start)) s"
exit $failed
