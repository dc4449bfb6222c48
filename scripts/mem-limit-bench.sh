#!/usr/bin/env bash
# Decode speed under a real memory limit (issue 8): a memory cgroup (v1, as root) limited to 100/90/75/50/30%
# of the model file, the page cache dropped before each run; strata with --mem LIMIT (weights beyond it
# streamed with O_DIRECT) vs strata's plain mmap mode, and `strata plan`'s prediction at each budget.
#   scripts/mem-limit-bench.sh [MODEL.gguf] [OUT_DIR]
# Defaults: /tmp/strata-models/tinyllama-q8_0.gguf (made with `strata gen-model tinyllama-1.1b --type q8_0
# -o ...` when absent), /tmp/strata-mem-bench. Writes results.csv, results.md and budget.svg to OUT_DIR.
# Env: STRATA (binary, default build-stream/strata then build/strata), N_GEN (8), THREADS (2),
#      FRACTIONS ("100 90 75 50 30"), MODES ("mem mmap").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
model=${1:-/tmp/strata-models/tinyllama-q8_0.gguf}
out=${2:-/tmp/strata-mem-bench}
strata=${STRATA:-}
if [[ -z $strata ]]; then
  for b in "$here/build-stream/strata" "$here/build/strata"; do [[ -x $b ]] && strata=$b && break; done
fi
[[ -x ${strata:-} ]] || { echo "no strata binary: build it or set STRATA" >&2; exit 1; }
n_gen=${N_GEN:-8}
threads=${THREADS:-2}
fractions=${FRACTIONS:-"100 90 75 50 30"}
modes=${MODES:-"mem mmap"}
cg_root=/sys/fs/cgroup/memory
[[ -w $cg_root ]] || { echo "needs root and cgroup v1 at $cg_root" >&2; exit 1; }
mkdir -p "$out"
if [[ ! -f $model ]]; then
  mkdir -p "$(dirname "$model")"
  "$strata" gen-model tinyllama-1.1b --type q8_0 -o "$model"
fi
size=$(stat -c %s "$model")

# This machine's rates now (DRAM, compute, SSD under the model's directory): the prediction's profile.
profile="$out/profile.json"
# --ssd-file: the streaming rate over the model itself (what the streamer reads; on a VM the host's cache
# of the virtual disk makes it differ from a fresh file's).
"$strata" probe --quick --ssd-path "$(dirname "$model")" --ssd-file "$model" -o "$profile" > "$out/probe.txt" 2>&1 || true
[[ -s $profile ]] || profile=""

csv="$out/results.csv"
echo "fraction,limit_bytes,mode,tg_ts,ssd_mib_per_token,major_faults,fs_read_mib,peak_rss_mib,predicted_tg_ts,status,load1,ssd_gbps_used,ssd_rate_source" > "$csv"

run_limited() {  # limit_bytes logfile cmd...: runs cmd inside a fresh memory cgroup; prints its exit status
  local limit=$1 log=$2; shift 2
  local cg="$cg_root/strata-bench-$$"
  mkdir -p "$cg"
  echo "$limit" > "$cg/memory.limit_in_bytes"
  sync; echo 1 > /proc/sys/vm/drop_caches
  local rc=0
  bash -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' _ "$cg" \
    /usr/bin/time -f "TIME maxrss_kib %M majflt %F inputs %I" "$@" > "$log" 2>&1 || rc=$?
  grep -q "^oom_kill [1-9]" "$cg/memory.oom_control" 2>/dev/null && rc=137
  rmdir "$cg" 2>/dev/null || true
  echo "$rc"
}

# Unlimited reference (no cgroup, page cache warm after one run).
"$strata" bench -m "$model" -p 0 -n "$n_gen" -r 1 -t "$threads" -o csv > "$out/unlimited.csv" 2> "$out/unlimited.err" || true

for f in $fractions; do
  limit=$(( size * f / 100 ))
  predicted="" ssd_used="" ssd_source=""
  if [[ -n $profile ]]; then
    # The prediction, and the SSD rate the plan priced the streamed bytes at (re-read / first-read).
    read -r predicted ssd_used ssd_source < <("$strata" plan -m "$model" --mem "$limit" --ctx $((n_gen + 1)) \
      --threads "$threads" --profile "$profile" --json 2>/dev/null | python3 -c 'import json,sys; j = json.load(sys.stdin)
print(round(j["predicted_tg_ts"], 3), round(j.get("ssd_gbps_used", j["machine"]["ssd_seq_gbps"]), 3), j.get("ssd_rate_source", "stream"))' || true) || true
  fi
  for mode in $modes; do
    log="$out/run-$f-$mode.log"
    args=(bench -m "$model" -p 0 -n "$n_gen" -r 1 -t "$threads" -o csv)
    [[ $mode == mem ]] && args+=(--mem "$limit")
    load1=$(cut -d' ' -f1 /proc/loadavg)
    rc=$(run_limited "$limit" "$log" "$strata" "${args[@]}")
    tg=$(python3 - "$log" <<'PY'
import csv, sys
rows = [l for l in open(sys.argv[1]) if l.count(",") > 5]
try:
    r = list(csv.DictReader(rows))
    print(round(float(r[-1]["avg_ts"]), 3))
except Exception:
    print("")
PY
)
    stream=$(sed -n 's/.*--mem: \([0-9.]*\) MiB read from disk per forward pass.*/\1/p' "$log")
    read -r rss flt inp < <(sed -n 's/^TIME maxrss_kib \([0-9]*\) majflt \([0-9]*\) inputs \([0-9]*\).*/\1 \2 \3/p' "$log")
    status=ok
    [[ $rc != 0 ]] && status="failed rc=$rc"
    [[ $rc == 137 ]] && status=killed
    echo "$f,$limit,$mode,$tg,$stream,${flt:-},$(( ${inp:-0} * 512 / 1048576 )),$(( ${rss:-0} / 1024 )),$predicted,$status,$load1,$ssd_used,$ssd_source" | tee -a "$csv"
  done
done

python3 - "$csv" "$out" "$size" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
out, size = sys.argv[2], int(sys.argv[3])
# llama.cpp b4747 on this kind of machine (../shared/reference/llamacpp-baseline.md), Q8_0 tinyllama, 1.17 GB.
llama = {100: 17.5, 90: 1.23, 75: 0.83, 50: 0.69}
md = ["| budget | limit | strata --mem t/s | predicted t/s | pred. error | SSD MiB/token | SSD GB/s got | SSD GB/s planned | peak RSS MiB | strata mmap t/s | mmap major faults | llama.cpp t/s |",
      "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
by = {}
for r in rows: by.setdefault(int(r["fraction"]), {})[r["mode"]] = r
for f in sorted(by, reverse=True):
    m, p = by[f].get("mem", {}), by[f].get("mmap", {})
    def ts(r): return r.get("tg_ts") or r.get("status", "-")
    err = ""
    if m.get("tg_ts") and m.get("predicted_tg_ts"):
        err = f'{(float(m["predicted_tg_ts"]) / float(m["tg_ts"]) - 1) * 100:+.0f}%'
    got = ""  # what the disk delivered to the streamer: bytes per token x tokens/s
    if m.get("tg_ts") and m.get("ssd_mib_per_token"):
        got = f'{float(m["ssd_mib_per_token"]) * 1048576 * float(m["tg_ts"]) / 1e9:.2f}'
    used = f'{m["ssd_gbps_used"]} ({m.get("ssd_rate_source", "")})' if m.get("ssd_gbps_used") else ""
    md.append(f'| {f}% | {int(m.get("limit_bytes", p.get("limit_bytes", 0))) / 1e6:.0f} MB | {ts(m)} | {m.get("predicted_tg_ts", "")} | {err} | '
              f'{m.get("ssd_mib_per_token", "")} | {got} | {used} | {m.get("peak_rss_mib", "")} | {ts(p) if p else "-"} | {p.get("major_faults", "")} | {llama.get(f, "-")} |')
open(f"{out}/results.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
# SVG: decode t/s vs budget (log scale), strata --mem, predicted, strata mmap, llama.cpp.
W, H, L, R, T, B = 640, 360, 60, 20, 20, 50
import math
def x(f): return L + (100 - f) / 75 * (W - L - R)
ys = [0.1, 0.3, 1, 3, 10, 30]
def y(v): return T + (math.log10(30) - math.log10(max(v, 0.1))) / (math.log10(30) - math.log10(0.1)) * (H - T - B)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
for v in ys:
    svg.append(f'<line x1="{L}" x2="{W-R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/><text x="{L-6}" y="{y(v)+4:.1f}" text-anchor="end">{v}</text>')
for f in (100, 90, 75, 50, 30):
    svg.append(f'<text x="{x(f):.1f}" y="{H-B+18}" text-anchor="middle">{f}%</text>')
svg.append(f'<text x="{(L+W-R)/2}" y="{H-8}" text-anchor="middle">memory limit (% of the {size/1e9:.2f} GB model)</text>')
svg.append(f'<text x="14" y="{(T+H-B)/2}" transform="rotate(-90 14 {(T+H-B)/2})" text-anchor="middle">decode tokens/s (log)</text>')
series = [("strata --mem", "#1f77b4", {f: float(by[f]["mem"]["tg_ts"]) for f in by if by[f].get("mem", {}).get("tg_ts")}, ""),
          ("predicted (strata plan)", "#1f77b4", {f: float(by[f]["mem"]["predicted_tg_ts"]) for f in by if by[f].get("mem", {}).get("predicted_tg_ts")}, ' stroke-dasharray="5,4"'),
          ("strata mmap", "#d62728", {f: float(by[f]["mmap"]["tg_ts"]) for f in by if by[f].get("mmap", {}).get("tg_ts")}, ""),
          ("llama.cpp (mmap)", "#7f7f7f", llama, "")]
for i, (name, color, pts, dash) in enumerate(series):
    ps = sorted(pts.items(), reverse=True)
    if ps:
        svg.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="' + " ".join(f"{x(f):.1f},{y(v):.1f}" for f, v in ps) + '"/>')
        for f, v in ps: svg.append(f'<circle cx="{x(f):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>')
    svg.append(f'<line x1="{W-200}" x2="{W-175}" y1="{T+10+i*16}" y2="{T+10+i*16}" stroke="{color}" stroke-width="2"{dash}/><text x="{W-170}" y="{T+14+i*16}">{name}</text>')
svg.append("</svg>")
open(f"{out}/budget.svg", "w").write("\n".join(svg) + "\n")
PY
# Load-adjusted check (a busy machine): scale the profile's CPU-side rates (DRAM, f32, int8) so that the
# plan predicts the unlimited run measured above, keep the probed SSD rate, and compare every budget with
# that prediction and with the issue's roofline (resident bytes / DRAM + streamed bytes / SSD).
if [[ -n $profile && -s $out/unlimited.csv ]]; then
python3 - "$out" "$strata" "$model" "$threads" "$n_gen" <<'PY' | tee "$out/load-adjusted.md"
import csv, json, subprocess, sys
out, strata, model, threads, n_gen = sys.argv[1:6]
def plan(limit, prof):
    o = subprocess.run([strata, "plan", "-m", model, "--mem", str(limit), "--ctx", str(int(n_gen) + 1), "--threads",
                        threads, "--profile", prof, "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(o)
unl = float(list(csv.DictReader([l for l in open(f"{out}/unlimited.csv") if l.count(",") > 5]))[-1]["avg_ts"])
p0 = plan(1 << 50, f"{out}/profile.json")["predicted_tg_ts"]
k = unl / p0
j = json.load(open(f"{out}/profile.json"))
for key, field in (("dram_read_gbps", "gbps"), ("fma_f32_gflops", "gflops"), ("int8_dot_gops", "gops")):
    for e in j.get(key, []):
        if field in e: e[field] *= k
json.dump(j, open(f"{out}/profile-load-adjusted.json", "w"))
ssd = j['ssd'].get('stream_read_gbps') or j['ssd']['seq_read_gbps']  # first read; plans may use a re-read rate
rr = ", ".join(f"{r['gbps']:.2f} over {r['set_bytes'] / 1048576:.0f} MiB" for r in j['ssd'].get('reread', []))
print(f"unlimited: measured {unl:.2f} t/s, predicted {p0:.2f}: CPU-side rates scaled by {k:.3f}; SSD streaming "
      f"{ssd:.2f} GB/s first pass (re-read: {rr or 'not measured'}; sequential {j['ssd']['seq_read_gbps']:.2f})\n")
print("| budget | measured t/s | load-adjusted predicted | error | roofline t/s (resident/DRAM + streamed/SSD) | measured / roofline |")
print("|---:|---:|---:|---:|---:|---:|")
for r in csv.DictReader(open(f"{out}/results.csv")):
    if r["mode"] != "mem" or not r["tg_ts"]: continue
    pj = plan(int(r["limit_bytes"]), f"{out}/profile-load-adjusted.json")
    dram, ssd = pj["machine"]["dram_gbps"] * 1e9, pj["machine"]["ssd_seq_gbps"] * 1e9
    d = pj["decode"]
    roof = 1 / ((d["bytes_per_token_dram"] - d["bytes_per_token_ssd"]) / dram + d["bytes_per_token_ssd"] / ssd)
    m, pr = float(r["tg_ts"]), pj["predicted_tg_ts"]
    print(f"| {r['fraction']}% | {m:.2f} | {pr:.2f} | {(pr / m - 1) * 100:+.0f}% | {roof:.2f} | {m / roof * 100:.0f}% |")
PY
fi
echo "wrote $out/results.csv, $out/results.md, $out/budget.svg, $out/load-adjusted.md"
