#!/usr/bin/env bash
# Training speed of `opensoc train` against the paper's recipe under PyTorch + PEFT, on the
# same machine, same data and same base weights (the default GGUF, dequantized to f32 by
# both), alternating, in one run. Benchmark only: never part of CI.
#
#   scripts/bench-train-vs-peft.sh            # ROUNDS=2 STEPS=2 by default
#
# Needs python3 with venv and pip. Installs torch, transformers, peft and gguf from PyPI
# into WORK (default ~/.cache/opensoc/bench-peft; several GB), outside the repository.
# Prints non-padding training tokens/s of each run, peak RSS, and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-2}          # timed optimizer steps per run, after one untimed warm-up step
THREADS=${THREADS:-2}
WORK=${WORK:-${XDG_CACHE_HOME:-$HOME/.cache}/opensoc/bench-peft}
DATA=${DATA:-../shared/data/opensoc-ai/soc_train.json}

cargo build --release --quiet --bin opensoc
BIN=target/release/opensoc
MODEL=$("$BIN" models path)
[ -f "$MODEL" ] || "$BIN" models fetch >&2

mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
fi
"$WORK/venv/bin/python" -c "import torch, transformers, peft, gguf" 2>/dev/null ||
    "$WORK/venv/bin/pip" install --quiet torch transformers peft gguf

cat > "$WORK/peft_step.py" <<'PY'
# The paper's recipe (their Table IV) on CPU: LoRA r=16, alpha=32, dropout 0.05 on the seven
# projections, batch 4 x accumulation 4, max length 512 (right truncation), loss on every
# token, AdamW lr 2e-4. Padding to the longest sequence of each batch (cheaper than the
# paper's fixed length); tokens/s counts non-padding tokens only.
import json, resource, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import LoraConfig, get_peft_model

gguf, data, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
folder, name = gguf.rsplit("/", 1)
tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
tok.pad_token = tok.pad_token or tok.eos_token
model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
model = get_peft_model(model, LoraConfig(
    r=16, lora_alpha=32, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM",
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
rows = json.load(open(data))
texts = [f"### Instruction:\n{r['instruction']}\n\n### Input:\n{r['input']}\n\n### Response:\n{r['output']}"
         for r in rows]
all_tokens = sum(min(len(tok(t)["input_ids"]), 512) for t in texts)

def step(i):
    n = 0
    for a in range(4):
        start = (i * 16 + a * 4) % len(texts)
        batch = tok(texts[start:start + 4], max_length=512, truncation=True,
                    padding="longest", return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss / 4
        loss.backward()
        n += int(batch["attention_mask"].sum())
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    return n

step(0)  # warm-up, untimed
t0, n = time.perf_counter(), 0
for i in range(1, steps + 1):
    n += step(i)
secs = time.perf_counter() - t0
print(json.dumps({"tokens": n, "seconds": secs, "tokens_per_s": n / secs,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "paper_run_tokens": 3 * all_tokens,
                  "torch": torch.__version__}))
PY

# opensoc train for 1 + STEPS optimizer steps; tokens/s of the steps after the first.
ours() {
    local out="$WORK/run-$1"
    rm -rf "$out"
    shift
    # --max-steps ends the run early on purpose (exit code 1: "stopped, resumable").
    RAYON_NUM_THREADS=$THREADS /usr/bin/time -f "%M" -o "$WORK/rss" "$BIN" train --quiet \
        --data "$DATA" --out "$out" --max-steps $((STEPS + 1)) "$@" >/dev/null 2>&1 || true
    python3 - "$out/train_log.jsonl" "$WORK/rss" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
t = steps[-1]["tokens"] - steps[0]["tokens"]
s = steps[-1]["seconds"] - steps[0]["seconds"]
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(json.dumps({"tokens": t, "seconds": s, "tokens_per_s": t / s, "peak_rss_mb": rss}))
PY
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $THREADS threads, load $(cut -d' ' -f1 /proc/loadavg)"
results="$WORK/results.jsonl"
: > "$results"
for round in $(seq "$ROUNDS"); do
    r=$(OMP_NUM_THREADS=$THREADS "$WORK/venv/bin/python" "$WORK/peft_step.py" "$MODEL" "$DATA" \
        "$STEPS" "$THREADS" 2>"$WORK/peft.err" | tail -n1) || { cat "$WORK/peft.err" >&2; exit 1; }
    echo "{\"run\":\"peft\",\"round\":$round,\"r\":$r}" | tee -a "$results"
    r=$(ours default)
    echo "{\"run\":\"opensoc default\",\"round\":$round,\"r\":$r}" | tee -a "$results"
    r=$(ours paper --loss-on-prompt --batch-size 16 --lr 2e-4)
    echo "{\"run\":\"opensoc paper recipe\",\"round\":$round,\"r\":$r}" | tee -a "$results"
done

python3 - "$results" <<'PY'
import json, statistics, sys
runs = {}
paper_tokens = None
for line in open(sys.argv[1]):
    x = json.loads(line)
    runs.setdefault(x["run"], []).append(x["r"])
    paper_tokens = x["r"].get("paper_run_tokens", paper_tokens)
med = {k: statistics.median(r["tokens_per_s"] for r in v) for k, v in runs.items()}
print("\n| run | tokens/s median [min-max] | peak RSS MB | vs PyTorch + PEFT |")
print("|---|---|---|---|")
for k, v in runs.items():
    tps = [r["tokens_per_s"] for r in v]
    print(f"| {k} | {med[k]:.1f} [{min(tps):.1f}-{max(tps):.1f}] | "
          f"{max(r['peak_rss_mb'] for r in v):.0f} | {med[k] / med['peft']:.2f}x |")
print(f"\nThe paper's whole run (3 epochs, {paper_tokens} non-padding tokens) at the PyTorch "
      f"median: {paper_tokens / med['peft'] / 60:.1f} min")
PY
