#!/usr/bin/env bash
# Prefill and decode speed of OpenSOC's engine against llama.cpp's `llama-bench`, on the
# same GGUF file, the same machine and thread count, in one run, alternating.
#
# Benchmark only, never part of CI. llama.cpp is built from the source distribution of
# `llama-cpp-python` on PyPI (it vendors llama.cpp), into a work directory outside the
# repository; nothing of it is committed.
#
#   scripts/bench-vs-llamacpp.sh [--build-only]
#   scripts/bench-vs-llamacpp.sh --entries     # entries/min on the paper's 50 eval inputs
#
# --entries times llama.cpp's naive loop (one `llama-completion` run per prompt: the
# paper's prompt, greedy, up to 256 new tokens) against `opensoc analyze --no-narrative`
# (the default path: structured fields, batched, built-in adapter) on the same inputs,
# ROUNDS times alternating. DATA: the labelled file (default: the shared soc_eval.json).
#
# Environment: ROUNDS (alternations, default 3), REPEATS (repeats per measurement inside
# each tool, default 3), THREADS (default 2), MODEL (a GGUF file; default: OpenSOC's
# default model, fetched on first use), WEIGHTS (OpenSOC's in-memory format, default
# mixed), LLAMA_CPP_PYTHON_VERSION (default 0.3.36), WORK (default
# ~/.cache/opensoc/llamacpp-VERSION).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ROUNDS=${ROUNDS:-3}
REPEATS=${REPEATS:-3}
THREADS=${THREADS:-2}
WEIGHTS=${WEIGHTS:-mixed}
WORK=${WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/opensoc/llamacpp-$VERSION}
LLAMA_BENCH=$WORK/build/bin/llama-bench

build_llamacpp() {
    [ -x "$LLAMA_BENCH" ] && return
    mkdir -p "$WORK"
    echo "building llama-bench from llama-cpp-python $VERSION in $WORK" >&2
    [ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet cmake ninja scikit-build-core
    if [ ! -d "$WORK/src" ]; then
        "$WORK/venv/bin/pip" download --quiet --no-deps --no-build-isolation \
            --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$WORK"
        mkdir -p "$WORK/src"
        tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK/src" --strip-components=1
    fi
    PATH="$WORK/venv/bin:$PATH" cmake -S "$WORK/src/vendor/llama.cpp" -B "$WORK/build" -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2
    PATH="$WORK/venv/bin:$PATH" cmake --build "$WORK/build" --target llama-bench -j "$THREADS" >&2
}

build_llamacpp
[ "${1:-}" = "--build-only" ] && exit 0

(cd "$ROOT" && cargo build --release --quiet --bin opensoc)
OPENSOC=$ROOT/target/release/opensoc
if [ -z "${MODEL:-}" ]; then
    MODEL=$("$OPENSOC" models path)
    [ -f "$MODEL" ] || "$OPENSOC" models fetch >&2
fi

if [ "${1:-}" = "--entries" ]; then
    PATH="$WORK/venv/bin:$PATH" cmake --build "$WORK/build" --target llama-completion \
        -j "$THREADS" >&2
    DATA=${DATA:-$ROOT/../shared/data/opensoc-ai/soc_eval.json}
    exec python3 - "$WORK/build/bin/llama-completion" "$OPENSOC" "$MODEL" "$DATA" \
        "$THREADS" "$ROUNDS" <<'EOF'
import json, os, statistics, subprocess, sys, tempfile, time
completion, opensoc, model, data, threads, rounds = sys.argv[1:7]
records = json.load(open(data))
n = len(records)
env = dict(os.environ, RAYON_NUM_THREADS=threads)
quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with tempfile.TemporaryDirectory() as tmp:
    prompts = []
    for i, r in enumerate(records):
        path = os.path.join(tmp, f"prompt-{i}.txt")
        with open(path, "w") as f:
            f.write(f"### Instruction:\n{r['instruction']}\n\n### Input:\n{r['input']}\n\n### Response:\n")
        prompts.append(path)
    blocks = os.path.join(tmp, "inputs.txt")
    with open(blocks, "w") as f:
        f.write("\n\n".join(r["input"].strip() for r in records) + "\n")
    naive, ours = [], []
    for round in range(int(rounds)):
        start = time.monotonic()
        for path in prompts:
            subprocess.run([completion, "-m", model, "-f", path, "-n", "256", "--temp", "0",
                            "-t", threads, "-no-cnv", "--no-display-prompt", "--simple-io"],
                           check=True, **quiet)
        naive.append(n / (time.monotonic() - start) * 60)
        start = time.monotonic()
        subprocess.run([opensoc, "analyze", "--model", model, "--blocks", blocks,
                        "--no-narrative", "--format", "jsonl"], check=True, env=env, **quiet)
        ours.append(n / (time.monotonic() - start) * 60)
        print(f"round {round + 1}: llama.cpp naive loop {naive[-1]:.1f}/min, "
              f"opensoc analyze {ours[-1]:.1f}/min", file=sys.stderr)
a, b = statistics.median(naive), statistics.median(ours)
print(f"| {n} entries, {threads} threads | entries/min median [min-max] |")
print("|---|---|")
print(f"| llama.cpp naive loop | {a:.1f} [{min(naive):.1f}-{max(naive):.1f}] |")
print(f"| opensoc analyze --no-narrative | {b:.1f} [{min(ours):.1f}-{max(ours):.1f}] |")
print(f"| ratio | {b / a:.2f}x |")
EOF
fi

OUT=$(mktemp -d)
echo "model $MODEL, $THREADS threads, $ROUNDS rounds of $REPEATS repeats; raw results in $OUT" >&2
for round in $(seq "$ROUNDS"); do
    echo "round $round: llama-bench" >&2
    "$LLAMA_BENCH" -m "$MODEL" -p 128,512 -n 128 -t "$THREADS" -r "$REPEATS" -o json \
        > "$OUT/llamacpp-$round.json"
    echo "round $round: opensoc bench" >&2
    RAYON_NUM_THREADS=$THREADS "$OPENSOC" bench --model "$MODEL" --weights "$WEIGHTS" \
        --repeats "$REPEATS" --json > "$OUT/opensoc-$round.json"
done

python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ours = {"prefill 128": [], "prefill 512": [], "decode 128": []}
theirs = {k: [] for k in ours}
for r in range(1, rounds + 1):
    for row in json.load(open(f"{out}/llamacpp-{r}.json")):
        key = f"prefill {row['n_prompt']}" if row["n_gen"] == 0 else f"decode {row['n_gen']}"
        if key in theirs:
            theirs[key] += row["samples_ts"]
    report = json.load(open(f"{out}/opensoc-{r}.json"))
    for m in report["engine"][0]["measurements"]:
        if m["name"] in ours:
            ours[m["name"]] += m["samples"]
print("| measurement | llama.cpp tokens/s median [min-max] | OpenSOC tokens/s median [min-max] | ratio (medians) |")
print("|---|---|---|---|")
for k in ours:
    a, b = theirs[k], ours[k]
    if not a or not b:
        continue
    fa = f"{statistics.median(a):.0f} [{min(a):.0f}-{max(a):.0f}]"
    fb = f"{statistics.median(b):.0f} [{min(b):.0f}-{max(b):.0f}]"
    print(f"| {k} | {fa} | {fb} | {statistics.median(b) / statistics.median(a):.2f}x |")
EOF
