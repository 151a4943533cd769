#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and prints
# one Markdown row per target: executions, coverage (libFuzzer's cov = edges, ft = features),
# corpus size, time, and whether it crashed. Logs go to fuzz/logs/<target>.log, crashing
# inputs to fuzz/artifacts/<target>/.
#   fuzz/campaign.sh 300                 # every target, 5 minutes each
#   fuzz/campaign.sh 60 rules policy     # two targets, 1 minute each
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Run fuzz/seed.sh
# first so each target starts from the fixtures.
set -uo pipefail
cd "$(dirname "$0")"
seconds="${1:?usage: fuzz/campaign.sh SECONDS [TARGET...]}"
shift
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(case otlp_json otlp_protobuf rules policy trace_context suite proxy_http)
fi
mkdir -p logs
# Sanitizer none: the project forbids unsafe code, so AddressSanitizer mostly costs speed
# (about 2x) on 2 shared cores; panics, overflows (debug assertions), timeouts and memory
# blow-ups are still caught.
cargo +nightly fuzz build --sanitizer none >/dev/null || exit 1
echo "| target | executions | exec/s | cov | ft | corpus | seconds | result |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  start=$(date +%s)
  cargo +nightly fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"logs/$t.log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
  # libFuzzer's own time, without the build that `cargo fuzz run` may do first.
  fuzzed=$(grep -o 'runs in [0-9]* second' "logs/$t.log" | grep -o '[0-9]*' | tail -1)
  last=$(grep -E '^#[0-9]+' "logs/$t.log" | grep -E 'cov: ' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  result=ok
  ((rc != 0)) && result="crash (exit $rc, see fuzz/logs/$t.log)"
  echo "| $t | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${fuzzed:-$took} | $result |"
done
