#!/usr/bin/env bash
# Times a GGUF through llama.cpp (via the npm packages node-llama-cpp + @node-llama-cpp/linux-x64, installed
# into a scratch folder outside the repository, never vendored) with strata bench's tests, for a side-by-side
# ratio on the same machine at the same moment:
#   scripts/bench-llamacpp.sh -m MODEL.gguf [-p 128] [-n 64] [-d 0] [-t 2] [-r 3]
# pp: one batch of p random tokens after d tokens (filled untimed); tg: n tokens generated one at a time
# (greedy) after d tokens. Prints mean ± sd tokens/s per test. Scratch folder: $NLC_DIR (default
# /tmp/strata-nlc). Needs node >= 18 and npm.
set -euo pipefail

model="" p=128 n=64 d=0 t=2 r=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    -m) model="$2"; shift 2 ;;
    -p) p="$2"; shift 2 ;;
    -n) n="$2"; shift 2 ;;
    -d) d="$2"; shift 2 ;;
    -t) t="$2"; shift 2 ;;
    -r) r="$2"; shift 2 ;;
    *) echo "usage: $0 -m MODEL.gguf [-p N] [-n N] [-d N] [-t N] [-r N]" >&2; exit 2 ;;
  esac
done
[[ -f "$model" ]] || { echo "bench-llamacpp: give an existing GGUF with -m" >&2; exit 2; }
command -v npm >/dev/null || { echo "bench-llamacpp: npm is needed (apt-get install npm)" >&2; exit 2; }

dir="${NLC_DIR:-/tmp/strata-nlc}"
mkdir -p "$dir"
if [[ ! -d "$dir/node_modules/node-llama-cpp" ]]; then
  echo "bench-llamacpp: installing node-llama-cpp into $dir" >&2
  (cd "$dir" && [[ -f package.json ]] || (cd "$dir" && npm init -y >/dev/null))
  (cd "$dir" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund \
    node-llama-cpp @node-llama-cpp/linux-x64 >&2)
fi

cat > "$dir/bench.mjs" <<'EOF'
import {getLlama} from "node-llama-cpp";
const [modelPath, P, N, D, T, R] = process.argv.slice(2);
const p = +P, n = +N, d = +D, threads = +T, reps = +R;
const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: "error"});
const model = await llama.loadModel({modelPath, useMmap: true});
const context = await model.createContext({contextSize: d + Math.max(p, n) + 8, batchSize: Math.max(p, 512),
                                           threads: {ideal: threads, min: threads}, flashAttention: false});
const seq = context.getSequence();
const nVocab = model.tokens.nTokens ?? 32000;
const rnd = (k) => Array.from({length: k}, () => 1 + Math.floor(Math.random() * (nVocab - 1)));
const stats = (xs) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return `${m.toFixed(2)} ± ${sd.toFixed(2)}`;
};
const rewind = async () => {
  if (seq.nextTokenIndex > d) await seq.eraseContextTokenRanges([{start: d, end: seq.nextTokenIndex}]);
};
await seq.evaluateWithoutGeneratingNewTokens(rnd(Math.min(Math.max(p, 1), 512)));  // warm-up
await seq.clearHistory();
if (d > 0) await seq.evaluateWithoutGeneratingNewTokens(rnd(d));
const tag = d > 0 ? ` @ d${d}` : "";
const info = `${modelPath.split("/").pop()} | node-llama-cpp | ${threads}`;
if (p > 0) {
  const ts = [];
  for (let i = 0; i < reps; ++i) {
    await rewind();
    const toks = rnd(p);
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(toks);
    ts.push(p / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  console.log(`| ${info} | pp${p}${tag} | ${stats(ts)} |`);
}
if (n > 0) {
  const ts = [];
  for (let i = 0; i < reps; ++i) {
    await rewind();
    let k = 0;
    const t0 = process.hrtime.bigint();
    for await (const _ of seq.evaluate(rnd(1), {temperature: 0})) if (++k >= n) break;
    ts.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  console.log(`| ${info} | tg${n}${tag} | ${stats(ts)} |`);
}
await context.dispose();
await model.dispose();
EOF
cd "$dir" && node bench.mjs "$(realpath "$model")" "$p" "$n" "$d" "$t" "$r"
