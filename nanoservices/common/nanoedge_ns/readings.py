# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The producer's side of numbered readings: number, keep, serve.

A :class:`Producer` gives every reading its source (``service/instance``),
its sequence number (from the durable :class:`~nanoedge_ns.history.History`,
so a restart continues the numbering and never reuses a number) and the
time it was taken, stores it, and answers the history queries of
consumers (``GET /<resource>/history?since=N&limit=L``)::

    producer = Producer("resp", state_dir, instance="bed-4")
    reading = producer.publish({"breaths_per_min": 14})
    # {"breaths_per_min": 14, "taken_at": 1764990000.123, "seq": 1,
    #  "source": "resp/bed-4", "epoch": "9f0c..."}

Standard library only; the CoAP resources are in ``coapio``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import typing as t
import zlib
from urllib.parse import parse_qsl

from nanoedge_ns.history import History, HistoryError, write_atomically

DEFAULT_LIMIT = 500
MAX_LIMIT = 2000
DEFAULT_STATE_ROOT = "/var/lib/nanoedge"

log = logging.getLogger("nanoedge_ns.readings")


class Query(t.NamedTuple):
    since: int
    limit: int
    zlib: bool
    consumer: str


def parse_query(query: t.Union[str, t.Sequence[str]]) -> Query:
    """``since=N&limit=L&enc=zlib&consumer=C`` (or the Uri-Query options one
    by one); ValueError names the bad item."""
    items = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else \
        [tuple(part.partition("=")[::2]) for part in query]
    values = {"since": "0", "limit": str(DEFAULT_LIMIT), "enc": "", "consumer": ""}
    for key, value in items:
        if key not in values:
            raise ValueError("history: unknown query item %r (known: since, limit, enc, consumer)" % key)
        values[key] = value
    try:
        since, limit = int(values["since"]), int(values["limit"])
    except ValueError as exc:
        raise ValueError("history: since and limit must be whole numbers, got since=%r limit=%r"
                         % (values["since"], values["limit"])) from exc
    if since < 0 or not 1 <= limit <= MAX_LIMIT:
        raise ValueError("history: since must be >= 0 and limit 1..%d, got since=%d limit=%d"
                         % (MAX_LIMIT, since, limit))
    if values["enc"] not in ("", "zlib"):
        raise ValueError("history: enc must be zlib or absent, got %r" % values["enc"])
    if len(values["consumer"]) > 100:
        raise ValueError("history: consumer names at most 100 characters")
    return Query(since, limit, values["enc"] == "zlib", values["consumer"])


def safe_name(source: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", source)


class Producer:
    """Numbers, keeps and serves the readings of one source."""

    def __init__(self, service: str, state_dir: str, instance: str = "main", max_count: int = 20000,
                 max_bytes: int = 4 << 20, fsync: bool = True,
                 clock: t.Callable[[], float] = time.time) -> None:
        self.source = "%s/%s" % (service, instance) if instance else service
        self.clock = clock
        self.history = History(os.path.join(state_dir, "history", safe_name(self.source)), self.source,
                               max_count=max_count, max_bytes=max_bytes, fsync=fsync)
        self.latest: t.Optional[t.Dict[str, t.Any]] = None
        self.consumers = ConsumerPositions(os.path.join(self.history.directory, "consumers.json"), fsync)
        log.info("%s: history in %s holds seq %d..%d (epoch %s)", self.source, self.history.directory,
                 self.history.first_seq, self.history.last_seq, self.history.epoch)

    def publish(self, values: t.Dict[str, t.Any], taken_at: t.Optional[float] = None) -> t.Dict[str, t.Any]:
        """Number and store ``values`` (taken now unless ``taken_at``); the
        reading is on disk when this returns, so it may be served."""
        stamp = self.clock() if taken_at is None else taken_at
        self.latest = self.history.append(dict(values, taken_at=round(stamp, 3)))
        return self.latest

    def answer(self, query: t.Union[str, t.Sequence[str]]) -> t.Tuple[bytes, bool]:
        """The history page for ``query`` and whether it is zlib-compressed."""
        parsed = parse_query(query)
        extra = {}
        if parsed.consumer:
            # asking since=N says the consumer has handled N: a moved consumer that lost its own position resumes here
            extra["consumer_at"] = self.consumers.seen(parsed.consumer, parsed.since)
        page = self.history.page(parsed.since, parsed.limit, extra)
        return (zlib.compress(page, 6), True) if parsed.zlib else (page, False)

    def close(self) -> None:
        self.history.close()


class ConsumerPositions:
    """Where each consumer of this history last asked from (``since``), kept
    in ``consumers.json`` beside the history; only ever moves forward, and
    holds the ``MAX_CONSUMERS`` consumers heard from last."""

    MAX_CONSUMERS = 64

    def __init__(self, path: str, fsync: bool) -> None:
        self.path = path
        self.fsync = fsync
        self.positions: t.Dict[str, int] = {}
        try:
            with open(path, "rb") as handle:
                stored = json.loads(handle.read().decode("utf-8"))
            self.positions = {str(k): int(v) for k, v in stored.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("ignoring the unreadable consumer positions in %s: %s", path, exc)

    def seen(self, consumer: str, since: int) -> int:
        """Record that ``consumer`` asked from ``since``; return its position."""
        known = self.positions.pop(consumer, 0)
        self.positions[consumer] = max(known, since)  # last heard from goes last
        while len(self.positions) > self.MAX_CONSUMERS:
            del self.positions[next(iter(self.positions))]
        if since > known:
            write_atomically(self.path, json.dumps(self.positions).encode(), self.fsync)
        return self.positions[consumer]


def state_dir_for(service: str, state_dir: str) -> str:
    """``state_dir`` as given, or /var/lib/nanoedge/<service> when empty."""
    return state_dir or os.path.join(DEFAULT_STATE_ROOT, service)


def open_producer(service: str, args: t.Any) -> Producer:
    """The producer the common options describe (``service.parser``); a state
    folder that cannot be written falls back to a temporary one, loudly:
    the service still runs, without a history that survives it."""
    directory = state_dir_for(service, args.state_dir)
    options = {"instance": args.instance, "max_count": args.history_count, "max_bytes": args.history_bytes,
               "fsync": args.history_fsync}
    try:
        return Producer(service, directory, **options)
    except HistoryError as exc:
        fallback = os.path.join(tempfile.gettempdir(), "nanoedge-%s" % service)
        log.error("%s: %s; keeping the history in %s instead, which does not survive the service", service, exc,
                  fallback)
        return Producer(service, fallback, **options)


class Served:
    """A producer on CoAP: ``/<path>`` (observable: the latest reading, with
    ``initial``'s keys until the first) and ``/<path>/history``."""

    def __init__(self, producer: Producer, resource: t.Any, state: t.Dict[str, t.Any], context: t.Any) -> None:
        self.producer = producer
        self.resource = resource
        self.state = state
        self.context = context

    def publish(self, values: t.Dict[str, t.Any], taken_at: t.Optional[float] = None) -> t.Dict[str, t.Any]:
        """Number, store and serve one reading; observers are told."""
        self.state.update(self.producer.publish(values, taken_at))
        self.resource.notify()
        return self.state

    async def close(self) -> None:
        self.producer.close()
        await self.context.shutdown()


async def serve(service: str, path: str, args: t.Any, initial: t.Optional[t.Dict[str, t.Any]] = None,
                resources: t.Optional[t.Dict[str, t.Any]] = None) -> Served:
    """Open the producer the common options describe and serve it (with
    ``resources``, path -> resource, beside it) on ``args.bind``/``args.port``."""
    from nanoedge_ns import coapio  # here: the numbering above needs no CoAP

    producer = open_producer(service, args)
    state: t.Dict[str, t.Any] = dict(initial or {})
    resource = coapio.make_json_resource(lambda: state)
    served = dict(resources or {})
    served.update({path: resource, path + "/history": coapio.make_history_resource(producer.answer)})
    try:
        context = await coapio.serve(served, args.bind, args.port)
    except BaseException:
        producer.close()
        raise
    return Served(producer, resource, state, context)
