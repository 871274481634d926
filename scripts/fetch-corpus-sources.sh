#!/usr/bin/env bash
# Lays out the pinned corpus sources under DIR (default: corpus-sources), one folder per
# source, at the commits recorded in docs/DATA.md. Needs git and network access to GitHub.
# Then: opensoc corpus build --sources DIR --out data/corpus
set -euo pipefail

dir="${1:-corpus-sources}"
mkdir -p "$dir"

# name  repository  commit  paths to take
fetch() {
    local name="$1" repo="$2" commit="$3"
    shift 3
    local dest="$dir/$name"
    if [ -e "$dest/.pinned" ] && [ "$(cat "$dest/.pinned")" = "$commit" ]; then
        echo "$name: already at $commit"
        return
    fi
    rm -rf "$dest"
    git init -q "$dest"
    git -C "$dest" remote add origin "https://github.com/$repo.git"
    git -C "$dest" config core.sparseCheckout true
    printf '%s\n' "$@" > "$dest/.git/info/sparse-checkout"
    git -C "$dest" fetch -q --depth 1 --filter=blob:none origin "$commit"
    git -C "$dest" checkout -q FETCH_HEAD
    rm -rf "$dest/.git"
    echo "$commit" > "$dest/.pinned"
    echo "$name: $repo@$commit"
}

fetch coreruleset   coreruleset/coreruleset             2cbd1d019cb7c85319ba4d9102a382c9de7a8e53 /tests/regression/tests/ /LICENSE
fetch libinjection  client9/libinjection                e86ff4019a4343579cc307d96d79272d5efcd1be /data/ /COPYING
fetch waf-bypass    nemesida-waf/waf-bypass             c469703eddfc77b4b294387d05cd01f4354a74c6 /utils/payload/ /LICENSE
fetch payloadsallthethings swisskyrepo/PayloadsAllTheThings f9fa51417886ac11476cb62db2dff21773dc570b '/Command Injection/Intruder/' '/Directory Traversal/Intruder/' '/File Inclusion/Intruders/' /LICENSE
fetch crowdsec-hub  crowdsecurity/hub                   b03cb59b2131ebfc5300f5f14828e29967efd1a5 /.tests/ /LICENSE
fetch lnav          tstack/lnav                         bb0005f96c8dc486ee0b9005a4562be0ef61c878 /test/logfile_shop_access_log.0 /test/logfile_w3c_big.0 /LICENSE
fetch evtx-to-mitre mdecrevoisier/EVTX-to-MITRE-Attack  8119420d43bc0163200d64a733a80ad6e9cacf90 '/TA*/' '/EVTX_full_APT_attack_steps/' /LICENSE.md
fetch evtx-samples  omerbenamram/evtx                   9c7d0b5429e86200d9e449bbdd2679cbe54b54ea /samples/ /LICENSE-MIT /LICENSE-APACHE
fetch fuzzdb        fuzzdb-project/fuzzdb               5656ab25dc6bb43bae32236fab775658a90d7380 /attack/sql-injection/ /attack/xss/ /attack/os-cmd-execution/ /attack/path-traversal/ /attack/lfi/ /attack/rfi/ /_copyright.txt
