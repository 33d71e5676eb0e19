#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 300), starting from
# fuzz/seeds, and prints libFuzzer's figures. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# it use the sanitizer flags. Findings land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-target}
cargo fuzz build -O --target-dir "$target_dir"
for t in validate_event publish_body identity; do
  mkdir -p "corpus/$t"
  case $t in
    identity) cp seeds/identity-*.txt "corpus/$t/" ;;
    publish_body)
      for f in seeds/*.json; do (printf '\001'; cat "$f") > "corpus/$t/$(basename "$f").json"; done
      (printf '\002'; cat seeds/batch.ndjson) > "corpus/$t/batch.ndjson" ;;
    *) cp seeds/*.json "corpus/$t/" ;;
  esac
  echo "== $t for ${secs}s"
  cargo fuzz run -O --target-dir "$target_dir" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -max_len=65536 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::|Done|INFO: (Loaded|seed)|==.*ERROR|SUMMARY|artifact_prefix|Test unit written)" || true
done
