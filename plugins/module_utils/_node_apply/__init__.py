# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node applies its part of a plan itself, through its own Docker engine: no Ansible run.

The manager runs ``python3 -m ansible_collections.nanoedge.core.plugins.module_utils._node_apply`` over SSH
(the agent role installs module_utils on every worker) and writes one JSON request on its standard input;
the node answers one JSON result on its standard output (the request's format is in ``request.py``, the
result's in ``apply.py``). What it does is what the deploy role's container backend does
for the same descriptions (``roles/deploy/tasks/container.yml``), so a later full Ansible run finds nothing
to change: ``request`` checks the request, ``container`` says what the engine creates, ``apply`` decides and
acts, ``cli`` reads, answers and exits. Standard library only, Python >= 3.9: this runs on the nodes.
"""
