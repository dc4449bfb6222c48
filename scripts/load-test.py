#!/usr/bin/env python3
"""Bounded load test for an OpenAI-compatible server (`strata serve`, llama-server).

N concurrent clients each send R streaming /v1/completions requests (short distinct prompts, temperature 0,
max_tokens T, ignore_eos so every request generates T tokens) and the script reports, per concurrency level:
total generated tokens/s (all clients, wall time of the level), time to first token p50/p99 and time between
tokens p50/p99 (gaps between consecutive streamed chunks that carry text). Standard library only.

  scripts/load-test.py --url http://127.0.0.1:8080 --clients 1,4,16 --tokens 32 --requests 2
"""
import argparse
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


WORDS = ["cat", "dog", "tree", "ball", "sun", "boat", "bird", "cake", "fish", "park", "star", "rain", "frog",
         "kite", "moon", "shoe"]


def one_request(url, prompt, tokens, timeout, api_key):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "temperature": 0, "stream": True,
                       "ignore_eos": True})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = "Bearer " + api_key
    t0 = time.monotonic()
    conn.request("POST", "/v1/completions", body, headers)
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError("HTTP %d: %s" % (resp.status, resp.read()[:200]))
    times, n_tokens = [], None
    buf = b""
    while True:
        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(1)
        if not chunk:
            break
        now = time.monotonic()
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: "):
                continue
            data = ev[6:]
            if data == b"[DONE]":
                continue
            j = json.loads(data)
            if j.get("usage"):
                n_tokens = j["usage"]["completion_tokens"]
            for c in j.get("choices", []):
                if c.get("text"):
                    times.append(now)
    conn.close()
    if n_tokens is None:
        n_tokens = len(times)
    return t0, times, n_tokens


def server_metrics(url, api_key):
    """strata's /metrics counters as a dict ({} when the server has none)."""
    try:
        u = urllib.parse.urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
        headers = {"Authorization": "Bearer " + api_key} if api_key else {}
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace") if resp.status == 200 else ""
        conn.close()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("strata_"):
            k, _, v = line.partition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def run_level(args, n_clients):
    results, errors = [], []
    lock = threading.Lock()

    def client(ci):
        for r in range(args.requests):
            w = [WORDS[(ci * 7 + r * 3 + k) % len(WORDS)] for k in range(3)]
            prompt = "Client %d request %d: the %s, the %s and the %s" % (ci, r, *w)
            try:
                res = one_request(args.url, prompt, args.tokens, args.timeout, args.api_key)
                with lock:
                    results.append(res)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ttft = [(times[0] - ts) * 1e3 for ts, times, _ in results if times]
    tbt = [(b - a) * 1e3 for _, times, _ in results for a, b in zip(times, times[1:])]
    total = sum(n for _, _, n in results)
    return {"clients": n_clients, "requests": len(results), "errors": errors, "tokens": total, "wall": wall,
            "tok_s": total / wall if wall > 0 else 0, "ttft50": percentile(ttft, 50), "ttft99": percentile(ttft, 99),
            "tbt50": percentile(tbt, 50), "tbt99": percentile(tbt, 99), "tbtmax": max(tbt) if tbt else float("nan"),
            "load1": os.getloadavg()[0]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--clients", default="1,4,16", help="comma-separated concurrency levels")
    ap.add_argument("--tokens", type=int, default=32, help="max_tokens per request")
    ap.add_argument("--requests", type=int, default=2, help="requests per client per level")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per request before giving up")
    ap.add_argument("--api-key", default="")
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    args = ap.parse_args()
    rows = []
    if not args.json:
        print("| clients | requests | total tok/s | TTFT p50 / p99 | time between tokens p50 / p99 / max | load |",
              flush=True)
        print("|---:|---:|---:|---:|---:|---:|", flush=True)
    failed = False
    for n in [int(x) for x in args.clients.split(",") if x]:
        m0 = server_metrics(args.url, args.api_key)
        r = run_level(args, n)
        m1 = server_metrics(args.url, args.api_key)
        d = {k: m1[k] - m0.get(k, 0) for k in m1}
        r["preemptions"] = d.get("strata_preemptions_total", 0)
        r["swap_out_mib"] = d.get("strata_swap_out_bytes_total", 0) / 2**20
        rows.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print("| %d | %d | %.1f | %.0f / %.0f ms | %.0f / %.0f / %.0f ms | %.1f |" % (
                n, r["requests"], r["tok_s"], r["ttft50"], r["ttft99"], r["tbt50"], r["tbt99"], r["tbtmax"],
                r["load1"]), flush=True)
        if r["preemptions"]:
            print("  preemptions: %d, KV swapped out: %.1f MiB" % (r["preemptions"], r["swap_out_mib"]), flush=True)
        if r["errors"]:
            failed = True
            print("  %d errors, first: %s" % (len(r["errors"]), r["errors"][0]), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
