#!/usr/bin/env python3
"""Builds the training file of the built-in adapter: the paper's training examples plus a
stratified sample of the real-data corpus's training split.

    scripts/training-mix.py PAPER_TRAIN.json data/corpus/train.jsonl OUT.jsonl [--cap N] [--paper M]

The corpus is sampled per (source, label category) group, at most N records a group
(default 30, seeded), so no source or class dominates; M of the paper's examples (default
all) are kept beside it, so an adapter started from the built-in one keeps what it knew.
The defaults of the built-in adapter's run keep it within an hour on two cores. Labels are normalised to the verdict rule the grammar enforces: a "No Threat"
example's risk score is at most 10. The paper's evaluation set is never read.
"""
import json
import random
import sys
from collections import defaultdict


def category(output: str) -> str:
    first = output.split("\n", 1)[0]
    return first.split(":", 1)[1].strip() if ":" in first else ""


def clamp_benign(output: str) -> str:
    if not category(output).startswith("No Threat"):
        return output
    lines = output.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("RISK_SCORE:"):
            try:
                score = int(line.split(":", 1)[1])
            except ValueError:
                continue
            lines[i] = f"RISK_SCORE: {min(score, 10)}"
    return "\n".join(lines)


def main() -> None:
    argv = sys.argv[1:]
    options = {"--cap": 30, "--paper": None}
    for name in options:
        if name in argv:
            at = argv.index(name)
            options[name] = int(argv[at + 1])
            del argv[at : at + 2]
    cap, paper_count = options["--cap"], options["--paper"]
    paper_path, corpus_path, out_path = argv
    rng = random.Random(42)
    paper = json.load(open(paper_path))
    if paper_count is not None:
        rng.shuffle(paper)
        paper = paper[:paper_count]
    groups = defaultdict(list)
    for line in open(corpus_path):
        if line.strip():
            r = json.loads(line)
            groups[(r.get("source", ""), category(r["output"]))].append(r)
    mix = [
        {"instruction": r.get("instruction", ""), "input": r["input"], "output": clamp_benign(r["output"])}
        for r in paper
    ]
    for key in sorted(groups):
        records = groups[key]
        rng.shuffle(records)
        for r in records[:cap]:
            mix.append({"instruction": "", "input": r["input"], "output": clamp_benign(r["output"])})
    rng.shuffle(mix)
    with open(out_path, "w") as f:
        for r in mix:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(mix)} records ({len(paper)} from the paper, {len(mix) - len(paper)} from the corpus, cap {cap})")


if __name__ == "__main__":
    main()
