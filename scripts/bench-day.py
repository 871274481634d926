#!/usr/bin/env python3
"""Builds the "day of logs" of scripts/bench-day.sh and compares its alerts.

build:   a day (24 h) of web, IIS, sshd and syslog lines replayed from the committed corpus
         (data/corpus/train.jsonl): benign lines with new timestamps and client addresses,
         attacks as bursts (sshd guessing, web scans) and scattered single requests, with a
         label per line; plus a smaller log of every attack line and a benign sample, for
         the run without fast path and cache.
compare: alerts of the day run (fast path + cache) against the run without them, per
         attack line; model calls per 1,000 benign lines.

Volume is synthesised: every line is a real corpus line (real or composed, see
docs/DATA.md) whose timestamp, client address and port are replaced.
"""

import argparse
import json
import os
import random
import re
import sys
from collections import defaultdict
from datetime import datetime, timedelta, timezone

W3C_HEADER = [
    "#Software: Microsoft Internet Information Services 10.0",
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken",
]
DAY = datetime(2026, 11, 29, tzinfo=timezone.utc)
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
FILES = ["access.log", "iis.log", "auth.log", "syslog.log"]

ACCESS = re.compile(r'^(\S+) (\S+) (\S+) \[[^\]]+\] (".*") (\d{3}) (.*)$')
BSD = re.compile(r"^(<\d+>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (.*)$")
RFC5424 = re.compile(r"^(<\d+>1) (\S+) (.*)$")
FROM_IP = re.compile(r"\b(from|by) \d{1,3}(?:\.\d{1,3}){3}")
PORT = re.compile(r"\bport \d+")


def clf(t):
    return f"{t.day:02d}/{MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"


def rewrite(fmt, line, t, ip, rng, status=None):
    """The line at time t from client ip (None if the line does not parse)."""
    if fmt in ("access-combined", "access-common"):
        m = ACCESS.match(line)
        if not m:
            return None
        client, ident, user, request, code, rest = m.groups()
        return f"{ip} {ident} {user} [{clf(t)}] {request} {status or code} {rest}"
    if fmt == "w3c":
        f = line.split(" ")
        if len(f) != 15:
            return None
        f[0], f[1], f[8] = f"{t:%Y-%m-%d}", f"{t:%H:%M:%S}", ip
        if status:
            f[11] = status
        return " ".join(f)
    if fmt == "syslog-3164":
        m = BSD.match(line)
        if not m:
            return None
        pri, rest = m.groups()
        rest = FROM_IP.sub(lambda g: f"{g.group(1)} {ip}", rest)
        rest = PORT.sub(lambda _: f"port {rng.randint(1024, 65535)}", rest)
        return f"{pri or ''}{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S} {rest}"
    if fmt == "syslog-5424":
        m = RFC5424.match(line)
        if not m:
            return None
        head, _, rest = m.groups()
        return f"{head} {t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z {rest}"
    return None


def file_of(fmt):
    return {
        "access-combined": "access.log",
        "access-common": "access.log",
        "w3c": "iis.log",
        "syslog-3164": "auth.log",
        "syslog-5424": "syslog.log",
    }.get(fmt)


def address(rng):
    while True:
        a = rng.randint(11, 223)
        if a not in (127, 169, 172, 192):
            return f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def record_lines(text):
    """The log lines of a corpus input (an incident's summary lines dropped)."""
    return [l for l in text.split("\n") if l.strip() and not l.lstrip().startswith("[...")]


def build(a):
    rng = random.Random(a.seed)
    records = [json.loads(l) for l in open(a.corpus, encoding="utf-8")]
    benign = defaultdict(list)  # pool name -> [(fmt, line)]
    singles = []  # single-line web attacks: (fmt, line, category)
    ssh_templates = []  # lines of sshd guessing bursts
    scan_lines = []  # lines of web scan bursts (access format)
    for r in records:
        fmt, cat, src, text = r["format"], r["category"], r["source"], r["input"]
        if file_of(fmt) is None:
            continue  # Windows events are multi-line records: not in this line-based day
        multi = "\n" in text
        if cat == "NO THREAT" and not multi:
            if src in ("lnav-real", "composed-web"):
                pool = "w3c" if fmt == "w3c" else "web"
            elif src in ("composed-syslog", "crowdsec-hub"):
                pool = fmt
            else:
                # CRS and libinjection texts that must not alert: odd but benign, rare.
                pool = "odd-w3c" if fmt == "w3c" else "odd-web"
            benign[pool].append((fmt, text))
        elif cat == "SSH BRUTE FORCE":
            ssh_templates += [l for l in record_lines(text) if "sshd" in l]
        elif cat != "NO THREAT" and multi and fmt.startswith("access"):
            scan_lines += [(fmt, l, cat) for l in record_lines(text)]
        elif cat != "NO THREAT" and not multi:
            singles.append((fmt, text, cat))
    # Pools of distinct lines: the distinct lines the fast path leaves to the model are
    # what costs model calls on a cold cache (IIS lines all reach the model: triage, which
    # reads one line without its file's `#Fields:` header, does not recognise them).
    for k, n in (("odd-web", a.odd_web), ("odd-w3c", a.odd_w3c), ("w3c", a.iis_distinct)):
        rng.shuffle(benign[k])
        benign[k] = benign[k][:n]
    rng.shuffle(singles)

    events = []  # (time, file, line, category, kind, client)
    total_attack = 0
    seconds = 86400

    def at(sec):
        return DAY + timedelta(seconds=sec)

    # sshd guessing bursts: one address, one attempt every 1-3 s.
    for _ in range(a.ssh_bursts):
        ip, t = address(rng), rng.uniform(0, seconds - 600)
        n = rng.randint(80, 150)
        start = rng.randrange(len(ssh_templates))
        for i in range(n):
            line = rewrite("syslog-3164", ssh_templates[(start + i) % len(ssh_templates)], at(t), ip, rng)
            if line:
                events.append((t, "auth.log", line, "SSH BRUTE FORCE", "burst", ip))
                total_attack += 1
            t += rng.uniform(1, 3)
    # Web scans: one address, many payloads, answered 404, one request every 0.2-1 s.
    scan_pool = scan_lines + [s for s in singles if s[0].startswith("access")]
    for _ in range(a.scan_bursts):
        ip, t = address(rng), rng.uniform(0, seconds - 600)
        for _ in range(rng.randint(60, 120)):
            fmt, text, cat = rng.choice(scan_pool)
            line = rewrite(fmt, text, at(t), ip, rng, status="404")
            if line:
                events.append((t, "access.log", line, cat, "burst", ip))
                total_attack += 1
            t += rng.uniform(0.2, 1.0)
    # Single attacks scattered over the day; some payloads come back from new addresses.
    distinct = singles[: a.single_attacks]
    for i in range(a.single_attacks + a.single_attacks // 5):
        fmt, text, cat = distinct[i % len(distinct)]
        ip, t = address(rng), rng.uniform(0, seconds)
        line = rewrite(fmt, text, at(t), ip, rng)
        if line:
            events.append((t, file_of(fmt), line, cat, "single", ip))
            total_attack += 1
    # Benign traffic fills the day; clients are drawn from a fixed population.
    clients = [address(rng) for _ in range(3000)]
    lans = [f"10.0.{rng.randint(0, 9)}.{rng.randint(2, 254)}" for _ in range(200)]
    mix = [
        ("web", 0.535), ("odd-web", 0.015), ("w3c", 0.145), ("odd-w3c", 0.005),
        ("syslog-3164", 0.2), ("syslog-5424", 0.1),
    ]
    names, weights = zip(*mix)
    n_benign = a.lines - total_attack
    made = 0
    while made < n_benign:
        pool = rng.choices(names, weights)[0]
        fmt, text = rng.choice(benign[pool])
        ip = rng.choice(lans) if fmt.startswith("syslog") else rng.choice(clients)
        t = rng.uniform(0, seconds)
        line = rewrite(fmt, text, at(t), ip, rng)
        if line:
            events.append((t, file_of(fmt), line, "NO THREAT", "benign", ip))
            made += 1

    day = os.path.join(a.out, "day")
    sample = os.path.join(a.out, "attack-sample")
    os.makedirs(day, exist_ok=True)
    os.makedirs(sample, exist_ok=True)
    events.sort(key=lambda e: e[0])
    keep_benign = set(rng.sample([i for i, e in enumerate(events) if e[4] == "benign"], a.benign_sample))
    with open(os.path.join(a.out, "labels.tsv"), "w") as labels, open(
        os.path.join(a.out, "sample-map.tsv"), "w"
    ) as smap:
        for name in FILES:
            head = W3C_HEADER if name == "iis.log" else []
            with open(os.path.join(day, name), "w") as f, open(os.path.join(sample, name), "w") as s:
                for h in head:
                    f.write(h + "\n")
                    s.write(h + "\n")
                n = s_n = len(head)
                for i, (t, fname, line, cat, kind, ip) in enumerate(events):
                    if fname != name:
                        continue
                    n += 1
                    f.write(line + "\n")
                    labels.write(f"{name}\t{n}\t{cat}\t{kind}\t{ip}\n")
                    if kind != "benign" or i in keep_benign:
                        s_n += 1
                        s.write(line + "\n")
                        smap.write(f"{name}\t{s_n}\t{n}\n")
    attacks = sum(1 for e in events if e[4] != "benign")
    print(
        f"day: {len(events)} lines, {attacks} attack lines ({100 * attacks / len(events):.2f} %: "
        f"{a.ssh_bursts} sshd bursts, {a.scan_bursts} web scans, singles), "
        f"{len(events) - attacks} benign; attack sample: {attacks + a.benign_sample} lines",
        file=sys.stderr,
    )


def parse_id(vid):
    """`dir/file.log:12` or `dir/file.log:12-40` -> (file name, first, last)."""
    path, _, lines = vid.rpartition(":")
    first, _, last = lines.partition("-")
    return os.path.basename(path), int(first), int(last or first)


def alerts_by_line(verdicts_path, labels, map_back=None):
    """For each labelled attack line, whether the verdict of the entry holding it alerts."""
    entries = []  # (file, first, last, alert, client-in-input, decided)
    for l in open(verdicts_path, encoding="utf-8"):
        v = json.loads(l)
        name, first, last = parse_id(v["id"])
        alert = (v.get("category") or "NO THREAT") != "NO THREAT"
        entries.append((name, first, last, alert, v["input"], v))
    single = {}
    spans = defaultdict(list)
    for e in entries:
        if map_back:
            first, last = map_back[(e[0], e[1])], map_back[(e[0], e[2])]
            e = (e[0], first, last) + e[3:]
        if e[1] == e[2]:
            single[(e[0], e[1])] = e
        else:
            spans[e[0]].append(e)
    out = {}
    for (name, line), (cat, kind, ip) in labels.items():
        e = single.get((name, line))
        if e is None:
            # An incident: the entry spanning the line whose text names the client.
            cands = [s for s in spans[name] if s[1] <= line <= s[2] and ip in s[4]]
            e = cands[0] if cands else None
        out[(name, line)] = e
    return out, entries


def compare(a):
    labels, benign_lines = {}, 0
    for l in open(os.path.join(a.out, "labels.tsv")):
        name, line, cat, kind, ip = l.rstrip("\n").split("\t")
        if kind == "benign":
            benign_lines += 1
        else:
            labels[(name, int(line))] = (cat, kind, ip)
    map_back = {}
    for l in open(os.path.join(a.out, "sample-map.tsv")):
        name, s, d = l.split("\t")
        map_back[(name, int(s))] = int(d)
    for name in FILES:  # header lines map to themselves
        for i in (1, 2):
            map_back.setdefault((name, i), i)
    with_fp, entries = alerts_by_line(os.path.join(a.out, a.run + ".jsonl"), labels)
    without, _ = alerts_by_line(os.path.join(a.out, "plain.jsonl"), labels, map_back)
    same = diff = missing = 0
    diffs = []
    for key, (cat, kind, ip) in sorted(labels.items()):
        x, y = with_fp.get(key), without.get(key)
        if x is None or y is None:
            missing += 1
            continue
        if x[3] == y[3]:
            same += 1
        else:
            diff += 1
            diffs.append((key, cat, kind, x, y))
    n = same + diff
    print(f"attack lines: {len(labels)}; compared {n} ({missing} without a matching entry)")
    print(f"alert equal with and without fast path + cache: {same} of {n} ({100 * same / max(n, 1):.2f} %)")
    caught = sum(1 for k in labels if with_fp.get(k) and with_fp[k][3])
    print(f"attack lines alerted, {a.run} run: {caught} of {len(labels)} ({100 * caught / len(labels):.1f} %)")
    caught = sum(1 for k in labels if without.get(k) and without[k][3])
    print(f"attack lines alerted without fast path and cache: {caught} of {len(labels)}")
    for key, cat, kind, x, y in diffs:
        by = x[5].get("decided_by"), "cache" if x[5].get("cache") else ""
        print(
            f"  differs: {key[0]}:{key[1]} ({kind}, label {cat}): with {x[5].get('category')} [{by[0]} {by[1]}], "
            f"without {y[5].get('category')}"
        )
    # Model calls on benign lines: model-decided (not cached) single entries on benign lines.
    attack_keys = set(labels)
    calls = sum(
        1
        for (name, first, last, alert, text, v) in entries
        if v.get("decided_by") == "model" and not v.get("cache") and first == last
        and (name, first) not in attack_keys
    )
    alarms = sum(
        1
        for (name, first, last, alert, text, v) in entries
        if alert and first == last and (name, first) not in attack_keys
    )
    print(f"model calls on benign lines: {calls} ({1000 * calls / benign_lines:.2f} per 1,000 benign lines)")
    print(f"benign lines alerted: {alarms} ({10000 * alarms / benign_lines:.2f} per 10,000)")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--corpus", default="data/corpus/train.jsonl")
    b.add_argument("--out", required=True)
    b.add_argument("--lines", type=int, default=100_000)
    b.add_argument("--seed", type=int, default=20261130)
    b.add_argument("--ssh-bursts", type=int, default=8)
    b.add_argument("--scan-bursts", type=int, default=4)
    b.add_argument("--single-attacks", type=int, default=30, help="distinct payloads (plus 20 %% repeats)")
    b.add_argument("--benign-sample", type=int, default=30)
    b.add_argument("--odd-web", type=int, default=10, help="distinct odd but benign requests")
    b.add_argument("--odd-w3c", type=int, default=2)
    b.add_argument("--iis-distinct", type=int, default=15, help="distinct benign IIS lines")
    c = sub.add_parser("compare")
    c.add_argument("--out", required=True)
    c.add_argument("--run", default="cold", help="the day run's verdicts: cold or warm")
    a = p.parse_args()
    build(a) if a.cmd == "build" else compare(a)


if __name__ == "__main__":
    main()
