# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the registry keeps of aiocoap's per-message work gives what aiocoap
gives: an address's repr and multicast facts, and a message's copy."""

from __future__ import annotations

import copy
import typing as t

import pytest
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.optiontypes import BlockOption, OpaqueOption
from aiocoap.transports import udp6

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.aiocoap_tuning import (
    cheaper_addresses, cheaper_option_copies,
)

PKTINFO_V4 = bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]) + bytes(4)  # in6_pktinfo: ::ffff:127.0.0.1, if 0
PKTINFO_MULTICAST = bytes([0xff, 0x02]) + bytes(13) + b"\x01" + bytes(4)  # ff02::1


def facts(address: udp6.UDP6EndpointAddress, unwrapped: bool = False) -> t.Tuple[t.Any, ...]:
    cls = type(address)
    names = ("__repr__", "is_multicast", "is_multicast_locally")
    if unwrapped:
        getters = [getattr(cls.__repr__, "__wrapped__", cls.__repr__)] + [
            getattr(getattr(cls, name).fget, "__wrapped__", getattr(cls, name).fget) for name in names[1:]]
        return tuple(getter(address) for getter in getters)
    return (repr(address), address.is_multicast, address.is_multicast_locally)


@pytest.mark.parametrize("sockaddr, pktinfo, expected", [
    (("::ffff:127.0.0.1", 40000, 0, 0), PKTINFO_V4, ("<UDP6EndpointAddress 127.0.0.1:40000 (locally 127.0.0.1)>",
                                                     False, False)),
    (("::1", 40000, 0, 0), PKTINFO_MULTICAST, ("<UDP6EndpointAddress [::1]:40000 (locally ff02::1)>", False, True)),
    (("ff02::fd", 5683, 0, 0), PKTINFO_V4, ("<UDP6EndpointAddress [ff02::fd] (locally 127.0.0.1)>", True, False)),
    (("::ffff:224.0.1.187", 5683, 0, 0), PKTINFO_V4,
     ("<UDP6EndpointAddress 224.0.1.187 (locally 127.0.0.1)>", True, False)),
])
def test_the_address_facts_are_aiocoaps_and_kept(sockaddr: t.Tuple[t.Any, ...], pktinfo: bytes,
                                                 expected: t.Tuple[t.Any, ...]) -> None:
    interface = type("Interface", (), {})()
    cheaper_addresses()
    cheaper_addresses()  # once only
    address = udp6.UDP6EndpointAddress(sockaddr, interface, pktinfo=pktinfo)
    assert facts(address) == facts(address, unwrapped=True) == expected
    assert facts(udp6.UDP6EndpointAddress(sockaddr, interface, pktinfo=pktinfo)) == expected  # kept


@pytest.mark.parametrize("options", [
    {},
    {"content_format": 50, "etag": b"\x01\x02"},
    {"uri_path": ("beat", "w1"), "uri_query": ("lt=3", "x=y"), "observe": 0, "max_age": 3},
    {"block1": BlockOption.BlockwiseTuple(2, True, 6), "block2": BlockOption.BlockwiseTuple(0, False, 2), "size1": 9},
])
def test_a_message_copy_is_whole_and_apart(options: t.Dict[str, t.Any]) -> None:
    cheaper_option_copies()
    cheaper_option_copies()  # once only
    message = Message(code=Code.CHANGED, payload=b"x", **options)
    message.opt.add_option(OpaqueOption(65000, b"\x07"))  # an option aiocoap has no name for
    encoded = message.opt.encode()
    clone = message.copy()
    assert clone.opt.encode() == encoded
    assert not {id(option) for option in clone.opt.option_list()} & {id(option) for option in message.opt.option_list()}
    clone.opt.uri_path = ("other",)
    clone.opt.content_format = 60
    clone.opt.delete_option(65000)
    assert message.opt.encode() == encoded


def test_an_option_with_a_mutable_value_is_copied_deeply() -> None:
    cheaper_option_copies()
    message = Message(code=Code.CONTENT)
    odd = OpaqueOption(65001)
    odd.value = bytearray(b"ab")
    message.opt.add_option(odd)
    clone = copy.deepcopy(message.opt)
    clone.get_option(65001)[0].value[0] = 0x7a
    assert message.opt.get_option(65001)[0].value == bytearray(b"ab")
