#!/usr/bin/env bash
# scripts/run-fuzz.sh BUILD_DIR SECONDS: runs the GGUF parser fuzzer (fuzz_fuzz_gguf, built with
# -DSTRATA_FUZZ=ON) for SECONDS on a scratch copy of fuzz/corpus/gguf. Exits non-zero on a crash, leak,
# timeout or out-of-memory; the crashing input is kept and its path printed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/run-fuzz.sh BUILD_DIR SECONDS}
seconds=${2:-60}
bin=$(find "$build" -type f -name fuzz_fuzz_gguf -perm -u+x | head -n1)
if [ -z "$bin" ]; then
  echo "run-fuzz: fuzz_fuzz_gguf not found under $build: configure with -DSTRATA_FUZZ=ON (clang) and build it" >&2
  exit 2
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/strata-fuzz-gguf.XXXXXX")
mkdir -p "$scratch/corpus" "$scratch/artifacts"
cp fuzz/corpus/gguf/* "$scratch/corpus/"
# Tokens of the format (magic, versions, common keys, type ids) help the fuzzer build valid headers.
cat > "$scratch/gguf.dict" <<'DICT'
"GGUF"
"\x03\x00\x00\x00"
"\x02\x00\x00\x00"
"\x01\x00\x00\x00\x00\x00\x00\x00"
"\x00\x00\x00\x00\x00\x00\x00\x00"
"\xff\xff\xff\xff\xff\xff\xff\xff"
"\x08\x00\x00\x00"
"\x09\x00\x00\x00"
"general.alignment"
"general.architecture"
"tokenizer.ggml.tokens"
".weight"
DICT
echo "run-fuzz: $bin for ${seconds}s, scratch $scratch"
status=0
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  "$bin" "$scratch/corpus" -dict="$scratch/gguf.dict" -max_total_time="$seconds" -max_len=65536 \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$scratch/artifacts/" 2>&1 | tee "$scratch/log" | grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)' || status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ] || ls "$scratch/artifacts/"* >/dev/null 2>&1; then
  echo "run-fuzz: FAILED (exit $status); inputs kept in $scratch/artifacts, log in $scratch/log" >&2
  exit 1
fi
rm -rf "$scratch"
echo "run-fuzz: clean"
