#!/usr/bin/env bash
# The day-of-logs benchmark (docs/BENCHMARKS.md, "A day of logs"): builds a 100,000-line
# day of web, IIS, sshd and syslog lines from the committed corpus (scripts/bench-day.py
# says how), then runs `opensoc bench --logs` on it with a cold and a warm verdict cache,
# and the attack lines plus a benign sample without fast path and cache, and compares
# the alerts per attack line.
#
#   scripts/bench-day.sh [OUT_DIR]          (default: target/bench-day)
#   OPENSOC=path/to/opensoc  to use a built binary; NARRATIVE=1 to include the narrative.
set -euo pipefail

out="${1:-target/bench-day}"
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ -z "${OPENSOC:-}" ]; then
    cargo build -q -p opensoc --manifest-path "$here/Cargo.toml"
    OPENSOC="$here/target/debug/opensoc"
fi
narrative=(--no-narrative)
[ "${NARRATIVE:-0}" = 1 ] && narrative=()

mkdir -p "$out"
python3 "$here/scripts/bench-day.py" build --corpus "$here/data/corpus/train.jsonl" --out "$out"
rm -f "$out/cache.sqlite" "$out/cache.sqlite-wal" "$out/cache.sqlite-shm"

run() { # name, then bench arguments
    local name="$1"
    shift
    echo "== $name" >&2
    /usr/bin/time -v "$OPENSOC" bench --json --quiet "${narrative[@]}" --verdicts "$out/$name.jsonl" "$@" \
        > "$out/$name.json" 2> "$out/$name.time"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(json.dumps({k: r[k] for k in ("lines","entries","wall_seconds","lines_per_second","fast_path","cache","model_decided","model_calls","model_calls_per_1000_lines","triage_lines_per_second_per_core","peak_rss_mib")}))' "$out/$name.json"
}

run cold --logs "$out/day" --cache "$out/cache.sqlite"
run warm --logs "$out/day" --cache "$out/cache.sqlite"
run plain --logs "$out/attack-sample" --no-fast-path --no-cache
python3 "$here/scripts/bench-day.py" compare --out "$out" --run cold
echo "== warm run against the run without fast path and cache" >&2
python3 "$here/scripts/bench-day.py" compare --out "$out" --run warm
