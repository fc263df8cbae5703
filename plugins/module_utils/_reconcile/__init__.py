# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge continuous reconcile: watch the local CoAP profile registry
(docs/contracts.md, "The CoAP API") and run the plan + deploy command when the set of
live nodes or what they offer changes.

Runs on every manager. A manager is active only while its own registry holds
the leadership lease, granted by a majority of the cluster's members (the
workers are the witnesses; docs/contracts.md, "The CoAP API"): the daemon
stands as a candidate every second with ``PUT /leadership`` and steps down by
its own clock when the lease is not renewed. Only the active manager runs the
command, and every run carries the lease's term to the nodes, which refuse a
change from a term below the highest they have seen.

What counts as a change is the fingerprint of the live profiles: per node its
capabilities, power source, networks and architecture. Free memory, load and
the collection time move on every report and are left out. A change is
debounced (a burst of reports gives one run), runs never overlap (an flock
on the lock file, also against other programs that take it), a failed run is
retried with an exponential backoff, and every decision goes to the journal
(one line each) and to STATE_DIR/decisions.jsonl (one JSON object each).

The nanoedge.core.reconcile role installs this package under LIB/ansible_collections/nanoedge/core/plugins/module_utils/
and runs it through a short entry point::

    python3 nanoedge_reconcile.py --config /etc/nanoedge-reconcile/config.json
    python3 nanoedge_reconcile.py status     # role, term, lease, who granted it, the last run

or, with LIB on the module search path::

    python3 -m ansible_collections.nanoedge.core.plugins.module_utils._reconcile --config ...

Exit status: 0 after a clean stop (or, with --once, when nothing had to run or
the run succeeded), 1 when the --once run failed, 2 for a bad configuration,
3 when --once could not read the registry (or status the state file).
"""
