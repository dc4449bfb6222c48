#!/usr/bin/env bash
# Installs, builds and runs every test: the Release build, the unit tests again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and the GGUF fuzzer for a bounded time.
# STRATA_FAST_TEST=1 skips the sanitizer and fuzz stages (for quick local iterations).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== Release build + tests"
scripts/build.sh build
ctest --test-dir build --output-on-failure -j"$jobs"

if [ "${STRATA_FAST_TEST:-0}" != "1" ]; then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build + tests"
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_SANITIZE=ON -DSTRATA_BENCH=OFF
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    STRATA_SANITIZED=1 ctest --test-dir build-asan --output-on-failure -j"$jobs"

  if [ -d fuzz ] && ls fuzz/*.cpp >/dev/null 2>&1; then
    echo "== GGUF parser fuzzing (libFuzzer, ${STRATA_FUZZ_SECONDS:-60} s)"
    CC=clang CXX=clang++ scripts/build.sh build-fuzz -DSTRATA_FUZZ=ON -DSTRATA_TESTS=OFF -DSTRATA_BENCH=OFF
    scripts/run-fuzz.sh build-fuzz "${STRATA_FUZZ_SECONDS:-60}"
  fi
fi
echo "== all tests passed"
