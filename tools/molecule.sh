#!/usr/bin/env bash
# The molecule scenarios (molecule/): default (containers), bare_metal (systemd units), check
# (--check changes nothing), continuity, partition and swarm (dynamic operation), each
# against the demo cluster, which each scenario starts and stops. Run from a laid-out copy of
# the collection, as ansible-test does.
#   tools/molecule.sh                 # every scenario, in that order
#   tools/molecule.sh default check   # some
#   MOLECULE_ARGS="--destroy never" tools/molecule.sh default
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/.venv/bin
COLL_ROOT=${NANOEDGE_MOLECULE_COLLECTIONS:-$ROOT/.build/molecule-collections}
COLL_DEST=$COLL_ROOT/ansible_collections/nanoedge/core
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(default bare_metal check continuity partition swarm)

bash "$ROOT/tools/demo.sh" --prepare-only
make -s -C "$ROOT" layout COLL_DEST="$COLL_DEST"

export ANSIBLE_COLLECTIONS_PATH=$COLL_ROOT:$ROOT/.build/collections
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
export NANOEDGE_WHEELS_DIR=$ROOT/.build/wheels
export NANOEDGE_SOURCE_DIR=$ROOT
export PATH=$BIN:$PATH
cd "$COLL_DEST"
for scenario in "${scenarios[@]}"; do
    printf 'molecule: scenario %s\n' "$scenario" >&2
    start=$(date +%s)
    # shellcheck disable=SC2086  # MOLECULE_ARGS is a list of options
    molecule --base-config molecule/shared/base.yml test -s "$scenario" ${MOLECULE_ARGS:-}
    printf 'molecule: scenario %s passed in %d s\n' "$scenario" "$(( $(date +%s) - start ))" >&2
done
