#!/bin/sh
# The KV quality table of docs/KV.md: every KV format (and window/budget variant) vs an f16 KV baseline with
# `strata ppl` (llama-perplexity's method), one JSON line per run.
# Usage: bench/scripts/kv_quality.sh STRATA_BIN MODEL TEXT [CTX] [THREADS] > results.jsonl
set -eu
BIN=$1; MODEL=$2; TEXT=$3; CTX=${4:-256}; T=${5:-2}
BASE=$(mktemp /tmp/strata-kv-base.XXXXXX)
trap 'rm -f "$BASE"' EXIT
"$BIN" ppl -m "$MODEL" -f "$TEXT" -c "$CTX" -t "$T" --save-logits "$BASE" --json
run() { "$BIN" ppl -m "$MODEL" -f "$TEXT" -c "$CTX" -t "$T" --kl-base "$BASE" --json "$@"; }
for f in f32 bf16 q8_0 q4_0 q4_1 bfp8 bfp4 bfp8r bfp4r q4h bfp4h gear2 gear4; do
  run -ctk $f -ctv $f
done
for f in q4_0 q4h gear2 bfp4r; do
  run -ctk $f -ctv $f --kv-window 32
done
run -ctk q8_0 -ctv q4h
run -ctk q4h -ctv gear2
