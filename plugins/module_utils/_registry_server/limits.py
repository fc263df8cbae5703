# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's limits on what peers can make it hold or do: the caps
themselves, the request rate per peer (token buckets) and the count of
observations per peer.

A peer is an IP address, not an address and port: a host that opens many
sockets is still one peer. Every clock is injected (monotonic seconds), so
the tests drive time themselves.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import time
import typing as t

Clock = t.Callable[[], float]

# What an unfinished block-wise upload costs beyond its payload: measured as
# the growth of the registry's resident memory per unfinished upload of one
# block (bench/bench_registry_limits.py: 3.3 to 4.4 kB with the key, the
# buffers and aiocoap's state of the exchange), so the memory caps count it too.
UPLOAD_OVERHEAD = 4096

# The largest Max-Age (RFC 7252: a 32-bit unsigned number of seconds).
MAX_AGE_LIMIT = 2 ** 32 - 1


class Limits(t.NamedTuple):
    """The caps, each a registry option (0 switches the request rate limit off)."""

    max_profiles: int = 1000
    max_uploads: int = 256
    max_uploads_per_peer: int = 8
    upload_memory: int = 16 * 1024 * 1024
    upload_memory_per_peer: int = 1024 * 1024
    max_observers: int = 256
    max_observers_per_peer: int = 16
    rate: float = 50.0
    burst: int = 1000


# (option, field, type, metavar, help); each is also a role variable nanoedge_registry_<field>.
_OPTIONS: t.Tuple[t.Tuple[str, str, t.Callable[[str], t.Any], str, str], ...] = (
    ("--max-profiles", "max_profiles", int, "N",
     "profiles stored at most; a new node beyond gets 5.03 with Max-Age, updates still work"),
    ("--max-uploads", "max_uploads", int, "N", "unfinished block-wise uploads held at most"),
    ("--max-uploads-per-peer", "max_uploads_per_peer", int, "N",
     "unfinished block-wise uploads held at most from one IP address"),
    ("--upload-memory", "upload_memory", int, "BYTES",
     "memory that unfinished block-wise uploads may hold, payload and overhead"),
    ("--upload-memory-per-peer", "upload_memory_per_peer", int, "BYTES",
     "the same from one IP address (at least --max-body plus 4096)"),
    ("--max-observers", "max_observers", int, "N",
     "observations held at most; beyond, an observation request is answered as a plain GET"),
    ("--max-observers-per-peer", "max_observers_per_peer", int, "N",
     "observations held at most for one IP address; its newest pushes out its oldest"),
    ("--rate-limit", "rate", float, "PER_SECOND",
     "requests per second from one IP address (0: no limit); more get 4.29 with Max-Age"),
    ("--rate-burst", "burst", int, "N", "requests one IP address may send at once before --rate-limit applies"),
)


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    for option, field, kind, metavar, text in _OPTIONS:
        parser.add_argument(option, dest=field, type=kind, default=getattr(defaults, field), metavar=metavar,
                            help="%s (default %%(default)s)" % text)


def check_limit_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """parser.error for limits that cannot work: no room at all, or no room for one largest profile."""
    for option, field, _kind, _metavar, _text in _OPTIONS:
        value = getattr(args, field)
        if value < 0 or (value == 0 and field != "rate"):
            parser.error("%s must be positive, got %s" % (option, value))
    if args.rate and args.burst < 1:
        parser.error("--rate-burst must be at least 1")
    overhead = UPLOAD_OVERHEAD
    for option, field in (("--upload-memory-per-peer", "upload_memory_per_peer"), ("--upload-memory", "upload_memory")):
        if getattr(args, field) < args.max_body + overhead:
            parser.error("%s must be at least --max-body + %d (%d), got %d"
                         % (option, overhead, args.max_body + overhead, getattr(args, field)))


def limits_of(args: argparse.Namespace) -> Limits:
    return Limits(**{field: getattr(args, field) for field in Limits._fields})


def max_age(seconds: float) -> int:
    """A Max-Age telling a client when to retry: whole seconds, at least 1."""
    return int(min(MAX_AGE_LIMIT, max(1, math.ceil(seconds))))


def peer_of(remote: t.Any) -> str:
    """The IP address of a request's sender (under OSCORE, of the datagrams
    carrying it); IPv4 without its IPv6-mapped prefix."""
    address = getattr(remote, "underlying_address", None) or remote
    sockaddr = getattr(address, "sockaddr", None)
    if sockaddr:
        host = str(sockaddr[0])
        return host[7:] if host.startswith("::ffff:") and "." in host else host
    return str(getattr(address, "hostinfo", address))


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """A token bucket per peer: ``burst`` requests at once, then ``rate`` per
    second. A bucket that has filled up again is the same as none, so
    ``prune`` forgets it; at most ``max_peers`` buckets are kept (the least
    recently seen goes first), so spoofed source addresses cannot grow it."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic, max_peers: int = 10000) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.max_peers = max_peers
        self._buckets: "collections.OrderedDict[str, _Bucket]" = collections.OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def admit(self, peer: str) -> float:
        """0.0 when ``peer`` may make a request now (its token is taken), else
        the seconds until it may."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self._buckets.pop(peer, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._buckets[peer] = bucket
        while len(self._buckets) > self.max_peers:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def prune(self) -> None:
        """Forget the buckets that are full again."""
        now = self.clock()
        full = [peer for peer, bucket in self._buckets.items()
                if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst]
        for peer in full:
            del self._buckets[peer]

    def __len__(self) -> int:
        return len(self._buckets)


class ObserverCount:
    """Observations held, per peer and in all.

    A client that observes again does not always end its old observation: aiocoap, for one, only
    forgets it and resets the next notification, which may be minutes away. Refusing the newest
    observation of a peer at its cap would leave such a client polling, so at the per-peer cap the
    peer's OLDEST observation is ended (``end``, its last notification) to make room: a peer can only
    ever push out its own. The cap on all observations refuses (``admit`` says why)."""

    def __init__(self, per_peer: int, total: int) -> None:
        self.per_peer = per_peer
        self.total = total
        self.count = 0
        self._by_peer: t.Dict[str, "collections.OrderedDict[t.Any, t.Callable[[], None]]"] = {}

    def admit(self, peer: str, observation: t.Any, end: t.Callable[[], None]) -> t.Optional[str]:
        """Hold ``observation`` of ``peer``; None, or why it is served as a plain GET."""
        held = self._by_peer.get(peer)
        if held is not None and len(held) >= self.per_peer:
            _oldest, end_oldest = held.popitem(last=False)
            self.count -= 1
            end_oldest()
        elif self.count >= self.total:
            return "%d observations are held (at most %d)" % (self.count, self.total)
        self._by_peer.setdefault(peer, collections.OrderedDict())[observation] = end
        self.count += 1
        return None

    def release(self, peer: str, observation: t.Any) -> None:
        """``observation`` ended (idempotent: an observation pushed out is released already)."""
        held = self._by_peer.get(peer)
        if held is None or held.pop(observation, None) is None:
            return
        self.count -= 1
        if not held:
            del self._by_peer[peer]

    def held_by(self, peer: str) -> int:
        return len(self._by_peer.get(peer, ()))

    def pushed_out(self) -> str:
        """The last notification's text of an observation ended to make room for its peer's newer one."""
        return "observation ended: its peer observes again beyond %d observations at once (the oldest ends)" % (
            self.per_peer)


class RefusalLog:
    """A warning about refused requests at most once per ``every`` seconds
    (with how many there were), so a flood does not flood the journal."""

    def __init__(self, log: logging.Logger, every: float = 60.0, clock: Clock = time.monotonic) -> None:
        self.log = log
        self.every = every
        self.clock = clock
        self._since = 0
        self._next = float("-inf")

    def note(self, message: str) -> None:
        self._since += 1
        now = self.clock()
        if now < self._next:
            self.log.debug("refused: %s", message)
            return
        self.log.warning("refused %d request(s) over the limits since the last warning, the last: %s",
                         self._since, message)
        self._since = 0
        self._next = now + self.every
