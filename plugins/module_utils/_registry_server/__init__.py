# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core CoAP profile registry (docs/contracts.md, "The CoAP API").

Workers PUT their resource profile (docs/contracts.md, "The profile") to ``/profiles/{node}``;
managers read ``/profiles`` and may observe it. Profiles are validated with
the collection's one schema (``_profile.py``), kept in SQLite
(WAL, committed before the response) and expire ``lt`` seconds after their
last PUT.

Run by hand, from the folder that holds ``ansible_collections``::

    python3 -m ansible_collections.nanoedge.core.plugins.module_utils._registry_server \
        --bind 127.0.0.1 --port 5683 --db /tmp/registry.sqlite

The role nanoedge.core.registry runs it through ``roles/registry/files/nanoedge_registry.py``.

Representations: a profile is served as its canonical JSON (keys sorted,
no whitespace, UTF-8); ``/profiles`` is the canonical JSON object
node -> profile. The ETag of every representation is the first 8 bytes of
the SHA-256 of that canonical JSON, so a client can tell whether the stored
profile equals its own without fetching it (CBOR answers carry the same
ETag: it names the content, not the encoding).

Security (``--oscore-contexts``): every write must be OSCORE-protected as
the node written. ``--managers`` also restricts reads: the listed
identities may GET (and observe) everything, an authenticated worker only
``/profiles/{its own node}`` (so a reporter can compare before writing);
``/profiles``, other nodes' profiles and unprotected GETs get 4.01.

Modules: ``codec`` (decoding what is PUT, the ETag), ``wellformed`` (the
bounded check of a body before it is decoded), ``store`` (SQLite, the lock
and the check at start), ``model`` (leases and the collection),
``resources`` (CoAP), ``directory`` and ``directory_resources`` (the
service directory: ``/instances/{node}`` written by each node, ``/services``
observed by every node's agent), ``limits`` (the caps, the request rate per peer and
the observations per peer), ``uploads`` (unfinished block-wise uploads, within
their caps), ``server`` (sockets and the serving loop), ``oscore_site``
(the OSCORE security contexts and the site wrapper that unprotects requests),
``watchdog`` (systemd notification, restarting a stalled loop), ``cli``
(the command line), ``aiocoap_dep`` (the libraries beyond the standard
library).
"""

from __future__ import annotations

import logging

PROG = "nanoedge.core.registry"
LOG = logging.getLogger("nanoedge.registry")
