# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge reporting agent: keeps this worker's resource profile in the CoAP
profile registries (docs/contracts.md, "The CoAP API") and beats to them.

As a service (the default; the nanoedge.core.agent role runs it under
systemd) it reports the profile to every registry at start, within
``debounce`` seconds of a device, power or network event (kernel uevents,
inotify on the folders discovery reads, and a look at them every
``poll_interval`` seconds), every ``interval`` seconds with a lease of three
intervals as the safety net, and at once to a registry whose beat answer
says its copy is stale or missing. Every ``beat_interval`` seconds it sends a
beat to every registry, and witnesses the managers' leadership
(``_leadership.Witness``, its state in ``<state_dir>/witness.json``).
``--once`` reports once and exits, ``--print`` prints the profile.

The nanoedge.core.agent role installs the collection's module_utils on the
worker (role nanoedge.core.code) and a short entry point,
roles/agent/files/nanoedge_agent.py, that imports this package: the
discovery and reporting code is the one behind nanoedge.core.resource_facts
and nanoedge.core.coap_report.

Modules: ``config`` (the configuration file, discovery with it), ``uevents``
(kernel uevents parsed, the subsystems that matter), ``sysfs`` (inotify and
the stat signature of the folders discovery reads), ``events`` (the sources
together, the debounce), ``reports`` (full reports), ``witness`` (the
witness file), ``beats`` (beats and their answers), ``directory`` and ``directory_server``
(the node's service directory: local nanoservices register and look up their
producers on 127.0.0.1, the agent keeps the managers' directory informed and
observes it), ``daemon`` (the service),
``cli`` (the command line).

Exit status: 0 after a clean stop, or with --once when at least min_acks
registries stored the profile; 1 when fewer did; 2 when the configuration or
the installation is broken.
"""

from __future__ import annotations

import typing as t


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    """The command line (``cli.main``), for entry points that import the package."""
    from ansible_collections.nanoedge.core.plugins.module_utils._agent.cli import main as cli_main

    return cli_main(argv)
