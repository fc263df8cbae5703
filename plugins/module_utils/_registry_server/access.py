# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who may do what on the registry under security (docs/contracts.md, "The
CoAP API"): the OSCORE identity of a request, the rule for writing as a node
(a profile, a beat) and the rule for what only the managers may read."""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import LOG
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_dep import Code, aiocoap
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.codec import BadInput


def authenticated_identity(request: aiocoap.Message) -> t.Optional[str]:
    """The OSCORE identity of the sender (``:name`` in the credentials map), or None.

    A context named ``name+tag`` speaks for ``name`` with keys of its own (the
    controller reporting for a worker that also runs the agent: two holders
    of one context would reuse its sequence numbers)."""
    try:
        claims = request.remote.authenticated_claims
    except Exception:
        return None
    for claim in claims or ():
        if isinstance(claim, str) and claim.startswith(":"):
            return claim[1:].split("+", 1)[0]
    return None


def check_node_identity(security: bool, request: aiocoap.Message, node: str, doing: str, do: str) -> None:
    """With security on, a request that acts as ``node`` needs OSCORE as
    ``node``, else 4.01; ``doing``/``do`` name the act ("writing /profiles/w1",
    "write /profiles/w1")."""
    if not security:
        return
    identity = authenticated_identity(request)
    if identity is None:
        raise BadInput(Code.UNAUTHORIZED, "%s needs OSCORE as node %r" % (doing, node))
    if identity != node:
        verb, _sep, target = do.partition(" ")
        LOG.warning("refused %s to %s by OSCORE identity %r", verb, target, identity)
        raise BadInput(Code.UNAUTHORIZED, "OSCORE identity %r may not %s" % (identity, do))


def check_manager(security: bool, managers: t.FrozenSet[str], request: aiocoap.Message, what: str) -> None:
    """With security on and readers named, ``what`` needs OSCORE as one of ``managers``; else 4.01."""
    if not security or not managers:
        return
    identity = authenticated_identity(request)
    if identity in managers:
        return
    if identity is not None:
        LOG.warning("refused %s by OSCORE identity %r", what, identity)
    raise BadInput(Code.UNAUTHORIZED, "%s needs OSCORE as one of the managers" % what)
