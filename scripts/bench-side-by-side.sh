#!/usr/bin/env bash
# strata and llama.cpp alternating on the same GGUFs with the same threads, for ratios on a shared machine:
#   scripts/bench-side-by-side.sh [-b BUILD_DIR] [-p 128] [-n 32] [-d 0] [-t 1] [-r 3] MODEL.gguf...
# For each model: `strata bench` then scripts/bench-llamacpp.sh (node-llama-cpp, see there), each preceded
# by the 1-, 5- and 15-minute load averages. Prints markdown rows.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$here/../build" p=128 n=32 d=0 t=1 r=3
while getopts "b:p:n:d:t:r:" o; do
  case "$o" in
    b) build="$OPTARG" ;; p) p="$OPTARG" ;; n) n="$OPTARG" ;; d) d="$OPTARG" ;; t) t="$OPTARG" ;; r) r="$OPTARG" ;;
    *) echo "usage: $0 [-b BUILD_DIR] [-p N] [-n N] [-d N] [-t N] [-r N] MODEL.gguf..." >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -gt 0 ]] || { echo "bench-side-by-side: give one or more GGUF files" >&2; exit 2; }
[[ -x "$build/strata" ]] || { echo "bench-side-by-side: no $build/strata: build it or pass -b BUILD_DIR" >&2; exit 2; }
for m in "$@"; do
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$build/strata" bench -m "$m" -p "$p" -n "$n" -d "$d" -t "$t" -r "$r" | grep -E '\| *(pp|tg)[0-9]'
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$here/bench-llamacpp.sh" -m "$m" -p "$p" -n "$n" -d "$d" -t "$t" -r "$r" | grep -E '(pp|tg)[0-9]'
done
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
