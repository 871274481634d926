#!/bin/sh
# Copies the pinned schema files the sinks tests validate against into this folder.
# Arguments: local git directories (clones or mirrors) of ocsf/ocsf-schema,
# elastic/ecs and mitre-attack/attack-navigator. Every file is copied whole, unchanged;
# all are under 4 MiB. Pins and licences: docs/DATA.md, "Vendored schemas".
set -eu
[ $# -eq 3 ] || { echo "usage: $0 OCSF_GIT_DIR ECS_GIT_DIR NAVIGATOR_GIT_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
ocsf=$1 ecs=$2 nav=$3
OCSF_PIN=6fa6499a0f8c9f449d342816e90e5f687c224b0a # tag 1.8.0
ECS_PIN=354fd8d0ca99faa15405d1ea1d3bb396724d3e5a  # tag v9.4.0
NAV_PIN=c620d05992adca044d3229322928e83de36a6d6d  # tag v5.1.0

take() { # git dir, commit, path in repo, destination under here
    mkdir -p "$(dirname "$here/$4")"
    git -C "$1" show "$2:$3" > "$here/$4"
}

# OCSF: the Detection Finding class, its parents, the dictionary, the Security Control
# profile OpenSOC applies, and the objects a Detection Finding written by OpenSOC can
# contain (with the objects they extend).
for f in LICENSE version.json categories.json dictionary.json \
    events/base_event.json events/findings/finding.json events/findings/detection_finding.json profiles/security_control.json \
    objects/object.json objects/_entity.json objects/finding_info.json objects/attack.json \
    objects/tactic.json objects/technique.json objects/sub_technique.json \
    objects/metadata.json objects/product.json objects/evidences.json \
    objects/network_endpoint.json objects/endpoint.json objects/user.json \
    objects/device.json objects/remediation.json; do
    take "$ocsf" $OCSF_PIN "$f" "ocsf/$f"
done

# ECS: the flat field reference.
take "$ecs" $ECS_PIN LICENSE.txt ecs/LICENSE.txt
take "$ecs" $ECS_PIN generated/ecs/ecs_flat.yml ecs/ecs_flat.yml

# ATT&CK Navigator: the layer format definition (a property table; the project publishes
# no JSON Schema file) and the licence.
take "$nav" $NAV_PIN LICENSE.txt navigator/LICENSE.txt
take "$nav" $NAV_PIN layers/spec/v4.5/layerformat.md navigator/layerformat-v4.5.md
