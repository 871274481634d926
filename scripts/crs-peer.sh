#!/usr/bin/env bash
# OWASP CRS scored beside OpenSOC on the same web log entries: writes a predictions file
# that `opensoc eval --predictions crs=FILE --answered-only crs` reads.
#
# Measurement only, never part of CI. Sets up, in a work directory outside the
# repository, ModSecurity v3 from the PyPI wheel `libmodsecurity` (Python bindings; the
# wheel bundles the native library) and OWASP CRS 3.3.4 from Debian's `modsecurity-crs`
# package (installed with apt-get when missing), paranoia level 1, inbound anomaly
# threshold 5, engine in DetectionOnly, rule 910100 commented out (it needs GeoIP, which
# the wheel lacks; inert in the default setup). Then replays every web access-log entry
# of DATA through phases 1-2 (scripts/crs-peer.py says how, and how categories are named).
#
#   scripts/crs-peer.sh DATA.jsonl [OUT.jsonl] [--split validation]
#
# OUT defaults to crs-predictions.jsonl. Environment: WORK (default
# $OPENSOC_HOME/crs-peer, else ~/.cache/opensoc/crs-peer), LIBMODSECURITY_VERSION
# (default 3.0.15.post2), CRS_RULES (default: Debian's rule directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=${LIBMODSECURITY_VERSION:-3.0.15.post2}
WORK=${WORK:-${OPENSOC_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/opensoc}/crs-peer}
CRS_RULES=${CRS_RULES:-/usr/share/modsecurity-crs/rules}
CRS_SETUP=${CRS_SETUP:-/etc/modsecurity/crs/crs-setup.conf}

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
DATA=$1
shift
OUT=crs-predictions.jsonl
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
    OUT=$1
    shift
fi

# The rules: Debian's package, installed when missing (needs root or sudo).
if [ ! -d "$CRS_RULES" ]; then
    echo "crs-peer: installing Debian's modsecurity-crs" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq modsecurity-crs >&2
fi
crs_version=$(dpkg-query -W -f='${Version}' modsecurity-crs 2>/dev/null || echo unknown)
case $crs_version in
    3.3.4*) ;;
    *) echo "crs-peer: warning: modsecurity-crs $crs_version, the figures were measured with 3.3.4" >&2 ;;
esac

# The engine: a venv with the wheel.
mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
fi
if ! "$WORK/venv/bin/python" -c "import libmodsecurity" 2>/dev/null; then
    "$WORK/venv/bin/pip" install --quiet "libmodsecurity==$VERSION"
fi

# A private copy of the rules with 910100 commented out (from its SecRule line to the
# blank line that ends its chain), and a main config.
rm -rf "$WORK/crs"
mkdir -p "$WORK/crs"
cp -r "$CRS_RULES" "$WORK/crs/rules"
cp "$CRS_SETUP" "$WORK/crs/crs-setup.conf"
awk '
    /^SecRule / { start = NR }
    { line[NR] = $0 }
    /id:910100,/ { from = start }
    END {
        for (i = 1; i <= NR; i++) {
            if (from && i >= from && !done) {
                if (line[i] == "") { done = 1; print; continue }
                print "# " line[i]
            } else print line[i]
        }
    }' "$CRS_RULES/REQUEST-910-IP-REPUTATION.conf" >"$WORK/crs/rules/REQUEST-910-IP-REPUTATION.conf"
if grep -q '^[^#]*id:910100' "$WORK/crs/rules/REQUEST-910-IP-REPUTATION.conf"; then
    echo "crs-peer: could not comment out rule 910100" >&2
    exit 1
fi
cat >"$WORK/crs/main.conf" <<CONF
SecRuleEngine DetectionOnly
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecAuditEngine Off
Include $WORK/crs/crs-setup.conf
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1"
SecAction "id:900110,phase:1,nolog,pass,t:none,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.outbound_anomaly_score_threshold=4"
Include $WORK/crs/rules/*.conf
CONF

"$WORK/venv/bin/python" "$ROOT/scripts/crs-peer.py" --data "$DATA" --out "$OUT" \
    --rules-conf "$WORK/crs/main.conf" "$@"
echo "crs-peer: predictions in $OUT" >&2
