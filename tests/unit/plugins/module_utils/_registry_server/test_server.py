# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the server does to keep a request cheap: the OSCORE context found by
its kid in a dict, and the repr of a peer's address kept."""

from __future__ import annotations

import typing as t

import pytest
from aiocoap.credentials import CredentialsMap
from aiocoap.oscore import COSE_KID, COSE_KID_CONTEXT
from aiocoap.transports import udp6

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.server import (
    _indexed, cheaper_address_repr,
)


class Context:
    """A security context as aiocoap's lookup sees it."""

    def __init__(self, kid: bytes, id_context: bytes) -> None:
        self.recipient_id = kid
        self.id_context = id_context

    def get_oscore_context_for(self, unprotected: t.Mapping[int, t.Any]) -> t.Optional["Context"]:
        if unprotected.get(COSE_KID) == self.recipient_id and unprotected.get(COSE_KID_CONTEXT) == self.id_context:
            return self
        return None


@pytest.mark.parametrize("kid, id_context, expected", [
    (b"\x01", b"m1", ":w1"), (b"\x02", b"m1", ":w2"), (b"\x02", b"m2", None), (b"\xfe", b"m1", None),
])
def test_the_context_is_found_by_its_kid(kid: bytes, id_context: bytes, expected: t.Optional[str]) -> None:
    credentials = _indexed(CredentialsMap)()
    contexts = {":w%d" % i: Context(bytes([i]), b"m1") for i in range(1, 250)}
    credentials.update(contexts)
    credentials.reindex()
    request = {COSE_KID: kid, COSE_KID_CONTEXT: id_context}
    if expected is None:
        with pytest.raises(KeyError):
            credentials.find_oscore(request)
    else:
        assert credentials.find_oscore(request) is contexts[expected]


def test_the_address_repr_is_the_same_and_kept() -> None:
    interface = type("Interface", (), {})()
    addresses = [udp6.UDP6EndpointAddress(("::ffff:127.0.0.1", 40000 + i, 0, 0), interface) for i in range(3)]
    before = [repr(address) for address in addresses]
    cheaper_address_repr()
    cheaper_address_repr()  # once only
    assert [repr(address) for address in addresses] == before
    assert before[0] == "<UDP6EndpointAddress 127.0.0.1:40000>"
    assert repr(udp6.UDP6EndpointAddress(("::1", 40000, 0, 0), interface)) == "<UDP6EndpointAddress [::1]:40000>"
