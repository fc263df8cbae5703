#!/usr/bin/env bash
# make demo: from a fresh clone to the paper's scenario running on the demo cluster.
#   1. prerequisites (Docker, the OCI registry, the base image), the venv and the collections
#   2. the wheels the nodes install from (they have no package index)
#   3. the demo cluster (testbed/) and the example nanoservices' images in the registry
#   4. nanoedge.core.site against inventory/testbed: the table is printed, the plan written to
#      build/demo/plan.json and the picture to build/demo/cluster.svg
#   The cluster runs in dynamic mode (nanoedge_dynamic): agents on the workers, the reconcile
#   service on the managers, so it goes on placing services by itself (make continuity measures it).
# Options: --prepare-only (steps 1-2, for tools/molecule.sh), --check (plan only), --static (no
# agents and no reconcile service), and anything after "--" goes to ansible-playbook.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/.venv/bin
OUT=${NANOEDGE_DEMO_DIR:-$ROOT/build/demo}
COLL_ROOT=$ROOT/.build/demo-collections
COLL_DEST=$COLL_ROOT/ansible_collections/nanoedge/core
WHEELS=$ROOT/.build/wheels

log() { printf 'demo: %s\n' "$*" >&2; }

prepare_only=false
check=()
dynamic=true
while [ $# -gt 0 ]; do
    case $1 in
        --prepare-only) prepare_only=true ;;
        --check) check=(--check) ;;
        --static) dynamic=false ;;
        --) shift; break ;;
        *) echo "usage: $0 [--prepare-only] [--check] [--static] [-- ANSIBLE_PLAYBOOK_ARGS...]" >&2; exit 2 ;;
    esac
    shift
done

# Pinned where the registry role pins them; the nodes run Debian bookworm's CPython 3.11.
registry_pin() {
    "$BIN/python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))[sys.argv[2]])' \
        "$ROOT/roles/registry/defaults/main.yml" "$1"
}

fetch_wheels() {
    local aiocoap cbor2 core arch
    aiocoap=$(registry_pin nanoedge_registry_aiocoap_version)
    cbor2=$(registry_pin nanoedge_registry_cbor2_version)
    # the managers' reconcile service runs the controller's ansible-core
    core=$("$BIN/python" -c 'import ansible.release; print(ansible.release.__version__)')
    arch=$(uname -m)
    mkdir -p "$WHEELS"
    if ! compgen -G "$WHEELS/aiocoap-$aiocoap-*.whl" >/dev/null || ! compgen -G "$WHEELS/cbor2-$cbor2-*.whl" >/dev/null \
            || ! compgen -G "$WHEELS/ansible_core-$core-*.whl" >/dev/null \
            || ! compgen -G "$WHEELS/lakers_python-*.whl" >/dev/null || ! compgen -G "$WHEELS/filelock-*.whl" >/dev/null; then
        log "downloading the wheels the nodes install (aiocoap[oscore] $aiocoap, cbor2 $cbor2, ansible-core $core and its dependencies)"
        "$BIN/pip" download -q --disable-pip-version-check --only-binary :all: \
            --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
            --platform "manylinux2014_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux_2_28_$arch" \
            --platform "manylinux_2_34_$arch" --platform any \
            -d "$WHEELS" "aiocoap[oscore]==$aiocoap" "cbor2==$cbor2" "ansible-core==$core"
    fi
}

cd "$ROOT"
log "prerequisites, venv and collections"
bash tools/prereqs.sh
make -s venv collections
make -s layout COLL_DEST="$COLL_DEST"
fetch_wheels
$prepare_only && exit 0

log "the demo cluster and the nanoservices' images"
"$BIN/python" tools/testbed.py up
"$BIN/python" tools/nanoservices.py

mkdir -p "$OUT"
export ANSIBLE_COLLECTIONS_PATH=$COLL_ROOT:$ROOT/.build/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_PIPELINING=1 ANSIBLE_FORKS=10
export PATH=$BIN:$PATH
cd "$COLL_DEST"
log "staging the wheels on the managers"
ansible-playbook -i inventory/testbed extensions/molecule/shared/prepare.yml -e "nanoedge_wheels_dir=$WHEELS"
log "nanoedge.core.site"
start=$(date +%s)
ansible-playbook -i inventory/testbed playbooks/site.yml "${check[@]}" \
    -e "nanoedge_wheels_dir=$WHEELS" \
    -e "nanoedge_plan_file=$OUT/plan.json" \
    -e "nanoedge_picture_file=$OUT/cluster.svg" \
    -e "nanoedge_picture_title='nanoedge demo cluster (paper testbed)'" \
    -e "nanoedge_dynamic=$dynamic" \
    "$@"
log "done in $(( $(date +%s) - start )) s: plan $OUT/plan.json, picture $OUT/cluster.svg"
log "stop the cluster with: make testbed-down"
