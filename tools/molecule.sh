#!/usr/bin/env bash
# The molecule scenarios (extensions/molecule/): default (containers), guide (the user guide's
# own nanoservice deployed beside them), check (--check changes nothing), bare_metal (systemd
# units), swarm, continuity and partition (dynamic operation), against the demo cluster.
# Scenarios given together (one argument, comma-separated) share one cluster (molecule's
# shared_state: the default scenario's create starts it before the first and its destroy stops
# it after the last), so a later scenario also checks the switch from what the one before left
# (containers to units, Swarm services to containers). Run from a laid-out copy of the
# collection, as ansible-test does.
#   tools/molecule.sh                                 # default,guide,check,bare_metal swarm,continuity,partition
#   tools/molecule.sh continuity                      # some, each group on its own cluster
#   MOLECULE_ARGS="--destroy never" tools/molecule.sh default
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/.venv/bin
COLL_ROOT=${NANOEDGE_MOLECULE_COLLECTIONS:-$ROOT/.build/molecule-collections}
COLL_DEST=$COLL_ROOT/ansible_collections/nanoedge/core
scenarios=("$@")
# shellcheck disable=SC2054  # each element is one group, its scenarios joined by commas
[ ${#scenarios[@]} -gt 0 ] || scenarios=(default,guide,check,bare_metal swarm,continuity,partition)

bash "$ROOT/tools/demo.sh" --prepare-only
make -s -C "$ROOT" layout COLL_DEST="$COLL_DEST"

export ANSIBLE_COLLECTIONS_PATH=$COLL_ROOT:$ROOT/.build/collections
export NANOEDGE_WHEELS_DIR=$ROOT/.build/wheels
export NANOEDGE_SOURCE_DIR=$ROOT
export PATH=$BIN:$PATH
cd "$COLL_DEST"
for group in "${scenarios[@]}"; do
    IFS=, read -r -a names <<< "$group"
    printf 'molecule: scenarios %s\n' "$group" >&2
    start=$(date +%s)
    # shellcheck disable=SC2086  # MOLECULE_ARGS is a list of options
    molecule --base-config extensions/molecule/shared/base.yml test "${names[@]/#/--scenario-name=}" ${MOLECULE_ARGS:-}
    printf 'molecule: scenarios %s passed in %d s\n' "$group" "$(( $(date +%s) - start ))" >&2
done
