#!/usr/bin/env python3
"""OWASP CRS as a peer of OpenSOC on web access logs: predictions for `opensoc eval`.

Reads a labelled data file (JSONL or a JSON list of records with `input` and, when known,
`format`), replays every web request of every web access-log entry through ModSecurity v3
with the OWASP Core Rule Set (phases 1 and 2, DetectionOnly, paranoia level 1, inbound
anomaly threshold 5), and writes one prediction per web entry:

    {"index": N, "output": "THREAT_TYPE: ...\\nMITRE_TECHNIQUE: ...", "crs": {...}}

(`index`: the record's 0-based position in DATA; technique, tactic and severity are the
taxonomy's for the threat type; `crs`: the highest anomaly score of the entry's requests,
the points of the matched rules summed over them, and the rule ids, for reading.)

Entries that are not web requests get no line, so `opensoc eval --predictions crs=FILE
--answered-only crs` scores CRS on the web entries only. Run through `scripts/crs-peer.sh`,
which sets up the engine and the rules; see docs/EVALUATION.md, "Real logs".

Alert: CRS's own blocking evaluation (rule 949110) fires, i.e. the inbound anomaly score,
the sum of the points of the rules that matched (CRITICAL 5, ERROR 4, WARNING 3, NOTICE 2),
reaches 5; the script checks that its own sum agrees. No alert: "no threat". Otherwise
the attack rule family with the most points decides, ties going to the lower rule id
(CRS order): 942 SQL injection, 941 XSS, 932/933/934/944 command injection, 930 path
traversal (LFI when only its OS-file rule 930120 matched), 931 file inclusion (LFI), 913
scanner detection reconnaissance; an alert of protocol rules only (911, 920, 921, 943) is
reconnaissance too. A multi-line (incident) entry alerts when any of its requests does;
the points of all of its requests add up per family.
"""

import argparse
import collections
import ipaddress
import json
import os
import re
import sys
import time

# Rule severity (syslog numbering, as ModSecurity reports it) -> CRS anomaly points.
POINTS = {2: 5, 3: 4, 4: 3, 5: 2}
THRESHOLD = 5

# Attack rule families in CRS order -> taxonomy fine type.
FAMILY_TYPE = {
    913: "Automated Reconnaissance / Vulnerability Scanning",
    930: "Path Traversal / Directory Traversal Attack",
    931: "Local File Inclusion (LFI) Attack",
    932: "OS Command Injection Attempt",
    933: "OS Command Injection Attempt",
    934: "OS Command Injection Attempt",
    941: "Cross-Site Scripting (XSS) Attempt",
    942: "SQL Injection — Union/Boolean SQLi",
    944: "OS Command Injection Attempt",
}
# Rules that add to the inbound anomaly score without naming an attack class.
PROTOCOL_FAMILIES = {911, 920, 921, 943}
RECONNAISSANCE = FAMILY_TYPE[913]
LFI = FAMILY_TYPE[931]
NO_THREAT = "No Threat Detected — Normal Traffic"
# 949110: the inbound anomaly score reached the threshold (CRS's own alert).
BLOCKING_EVALUATION = 949110
# 930120: a request names an OS file (/etc/passwd, boot.ini) without a traversal.
OS_FILE_ACCESS = 930120

WEB_FORMATS = re.compile(r"^(access(-.*)?|w3c|iis.*)$", re.IGNORECASE)
METHOD = re.compile(r"^[A-Z][A-Z_-]{1,19}$")

# Apache/nginx combined and common: host ident user [time] "request" status size
# ["referer" "user agent"].
ACCESS = re.compile(
    r'^(?P<client>\S+) \S+ \S+ \[[^\]]*\] "(?P<request>(?:[^"\\]|\\.)*)" \S+ \S+'
    r'(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)
W3C_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} ")


def client_address(text):
    """The logged client address, or a documentation address when it is a host name."""
    try:
        return str(ipaddress.ip_address(text or ""))
    except ValueError:
        return "192.0.2.1"


def unescape_log(text):
    """Undoes the log writer's escaping (`\\"`, `\\\\`, nginx's `\\xHH`), so the engine
    sees the bytes the client sent; percent-encoding is left for the engine to decode."""

    def sub(m):
        s = m.group(0)
        if s[1] == "x":
            return chr(int(s[2:], 16))
        return s[1]

    return re.sub(r"\\x[0-9a-fA-F]{2}|\\[\"\\]", sub, text)


def parse_access(line):
    """(client, method, uri, version, user agent, referer) of a combined/common line."""
    m = ACCESS.match(line)
    if not m:
        return None
    # A request line that is not one (a TLS handshake on the HTTP port) is replayed with
    # its bytes as the method, which is how the server saw it.
    parts = unescape_log(m.group("request")).split(" ")
    if not parts or not parts[0] or parts[0] == "-":
        return None
    method = parts[0]
    version = None
    if len(parts) >= 3 and parts[-1].upper().startswith("HTTP/"):
        version = parts[-1][5:]
        uri = " ".join(parts[1:-1])
    else:
        uri = " ".join(parts[1:])
    agent = m.group("agent")
    referer = m.group("referer")
    return {
        "client": m.group("client"),
        "method": method,
        "uri": uri,
        "version": version,
        "agent": None if agent in (None, "-") else unescape_log(agent),
        "referer": None if referer in (None, "-") else unescape_log(referer),
    }


def parse_w3c(line):
    """A W3C extended (IIS) line in the default field order: date time s-ip cs-method
    cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) [cs(Referer)]
    sc-status ...; the entries carry no #Fields header."""
    if not W3C_DATE.match(line):
        return None
    t = line.split(" ")
    m = next((i for i in range(2, min(len(t), 6)) if METHOD.match(t[i])), None)
    if m is None or m + 1 >= len(t):
        return None
    stem = t[m + 1]
    query = t[m + 2] if m + 2 < len(t) else "-"
    uri = stem if query == "-" else f"{stem}?{query}"
    client = t[m + 5] if m + 5 < len(t) else None
    agent = t[m + 6] if m + 6 < len(t) else "-"
    referer = t[m + 7] if m + 7 < len(t) and not re.match(r"^\d{3}$", t[m + 7]) else "-"
    # IIS writes spaces in header values as `+`.
    return {
        "client": client,
        "method": t[m],
        "uri": uri,
        "version": "1.1",
        "agent": None if agent == "-" else agent.replace("+", " "),
        "referer": None if referer == "-" else referer,
    }


def requests_of(record):
    """The web requests of one entry (an incident has several), or None when the entry
    is not a web access-log entry."""
    fmt = record.get("format")
    if isinstance(fmt, str) and fmt.strip() and not WEB_FORMATS.match(fmt.strip()):
        return None
    requests = []
    for line in str(record.get("input", "")).splitlines():
        line = line.strip()
        if not line or line.startswith("[..."):
            continue
        request = parse_access(line) or parse_w3c(line)
        if request:
            requests.append(request)
    return requests or None


class Crs:
    """ModSecurity with the CRS rules loaded once, replaying one request at a time."""

    def __init__(self, rules_conf):
        from libmodsecurity import ModSecurity, RulesSet, Transaction

        self.transaction = Transaction
        self.engine = ModSecurity()
        self.rules = RulesSet()
        if self.rules.load_from_uri(rules_conf) < 0:
            raise SystemExit(f"crs-peer: cannot load rules: {self.rules.get_parser_error()}")
        self.engine.set_connector_information("opensoc crs-peer")
        # Rule messages are read per transaction; the engine's own log text is noise.
        self.engine.set_log_callback(lambda _text: None)

    def close(self):
        self.engine.set_log_callback(None)

    def replay(self, request):
        """Rule messages of one request, after phases 1 and 2."""
        t = self.transaction(self.engine, self.rules)
        t.process_connection(client_address(request["client"]), 40000, "192.0.2.80", 80)
        # No protocol in the log (an HTTP/0.9-style line): 1.0, the oldest CRS allows, so
        # the missing field alone raises nothing; an empty URI (no request) as `/`.
        t.process_uri(request["uri"] or "/", request["method"], request["version"] or "1.0")
        # Every HTTP/1.1 request has a Host; the log does not record it, and without one
        # CRS adds points for a missing header that the real request had.
        t.add_request_header("Host", "localhost")
        if request["agent"] is not None:
            t.add_request_header("User-Agent", request["agent"])
        if request["referer"] is not None:
            t.add_request_header("Referer", request["referer"])
        if request["method"] in ("POST", "PUT", "PATCH"):
            # The body is not logged; an empty one rather than a missing Content-Length.
            t.add_request_header("Content-Length", "0")
        t.process_request_headers()
        t.process_request_body()
        messages = t.get_rule_messages()
        t.process_logging()
        return messages


def classify(messages):
    """(fine threat type, summed points, matched scoring rule ids) for the rule messages
    of all requests of one entry."""
    per_family = collections.Counter()
    rules = set()
    score = 0
    for msg in messages:
        family = msg.rule_id // 1000
        points = POINTS.get(msg.severity, 0)
        if family not in FAMILY_TYPE and family not in PROTOCOL_FAMILIES:
            continue  # initialisation, blocking evaluation, correlation
        if points == 0:
            continue
        rules.add(msg.rule_id)
        score += points
        if family in FAMILY_TYPE:
            per_family[family] += points
    # Whether the entry alerts at all is decided per request by the caller; this only
    # names the category of an alert.
    if per_family:
        family = min(per_family, key=lambda f: (-per_family[f], f))
        if family == 930 and {r for r in rules if r // 1000 == 930} == {OS_FILE_ACCESS}:
            return LFI, score, sorted(rules)
        return FAMILY_TYPE[family], score, sorted(rules)
    return RECONNAISSANCE, score, sorted(rules)


def request_score(messages):
    """(our sum of the points of the rule messages, CRS's own total from rule 949110 or
    None when it did not fire). CRS's total can be higher (a multi-match rule adds its
    points once per match but reports one message); whether the threshold is reached
    must agree, or the point table above is wrong."""
    ours = sum(
        POINTS.get(m.severity, 0)
        for m in messages
        if m.rule_id // 1000 in FAMILY_TYPE or m.rule_id // 1000 in PROTOCOL_FAMILIES
    )
    total = None
    for m in messages:
        if m.rule_id == BLOCKING_EVALUATION:
            found = re.search(r"Total Score: (\d+)", m.message)
            total = int(found.group(1)) if found else ours
    return ours, total


def load_taxonomy(path):
    with open(path, encoding="utf-8") as f:
        return {t["name"]: t for t in json.load(f)["fine_types"]}


def answer(fine_type, taxonomy):
    t = taxonomy.get(fine_type, {})
    lines = [f"THREAT_TYPE: {fine_type}"]
    for key, field in (
        ("MITRE_TECHNIQUE", "technique"),
        ("MITRE_TACTIC", "tactic"),
        ("SEVERITY", "severity"),
    ):
        if field in t:
            lines.append(f"{key}: {t[field]}")
    return "\n".join(lines)


def read_records(path):
    """(index, record) pairs of a JSON list or JSONL; a broken line is reported with its
    number and skipped, keeping the indices of the others."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        for i, r in enumerate(json.loads(text)):
            yield i, r
        return
    index = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"crs-peer: {path}, line {number}: not JSON ({e}); skipped", file=sys.stderr)
            index += 1
            continue
        yield index, record
        index += 1


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="labelled JSONL or JSON list")
    p.add_argument("--out", required=True, help="predictions JSONL to write")
    p.add_argument("--rules-conf", required=True, help="ModSecurity main config that includes CRS")
    p.add_argument(
        "--taxonomy",
        default=os.path.join(root, "crates/attack/data/taxonomy.json"),
        help="taxonomy that names technique, tactic and severity per threat type",
    )
    p.add_argument("--split", help="only records of this split")
    args = p.parse_args()

    taxonomy = load_taxonomy(args.taxonomy)
    crs = Crs(args.rules_conf)
    categories = collections.Counter()
    entries = requests_total = skipped = disagreements = 0
    elapsed = 0.0
    with open(args.out, "w", encoding="utf-8") as out:
        for index, record in read_records(args.data):
            if not isinstance(record, dict):
                print(f"crs-peer: record {index} is not an object; skipped", file=sys.stderr)
                continue
            if args.split and record.get("split") != args.split:
                continue
            requests = requests_of(record)
            if requests is None:
                skipped += 1
                continue
            started = time.perf_counter()
            messages, top, alert = [], 0, False
            for request in requests:
                got = crs.replay(request)
                ours, total = request_score(got)
                if (total is not None) != (ours >= THRESHOLD):
                    disagreements += 1
                top = max(top, ours if total is None else total)
                alert = alert or total is not None
                messages.extend(got)
            elapsed += time.perf_counter() - started
            fine_type, points, rules = classify(messages)
            if not alert:
                fine_type = NO_THREAT
            entries += 1
            requests_total += len(requests)
            categories[fine_type] += 1
            out.write(
                json.dumps(
                    {
                        "index": index,
                        "output": answer(fine_type, taxonomy),
                        "crs": {"anomaly_score": top, "points": points, "rules": rules},
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    crs.close()
    ms = 1000.0 * elapsed / entries if entries else 0.0
    if disagreements:
        print(
            f"crs-peer: warning: {disagreements} requests where the summed rule points and "
            "CRS's own blocking evaluation (rule 949110) disagree on the alert",
            file=sys.stderr,
        )
    print(
        f"crs-peer: {entries} web entries ({requests_total} requests) replayed, "
        f"{ms:.2f} ms per entry on one core; {skipped} entries not web requests, no prediction",
        file=sys.stderr,
    )
    for name, n in categories.most_common():
        print(f"  {n:6d}  {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
