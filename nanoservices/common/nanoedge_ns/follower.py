# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The consumer's side of numbered readings: catch up, then follow.

A :class:`Follower` hands a producer's readings to ``handle`` in order,
each once. It remembers, durably, the last sequence number it processed per
source (``<state dir>/follow-<name>.json``, written whole by rename) and
asks the producer's history for what came after (``?since=N``): a consumer
that starts, restarts or moves catches up before it follows. What it could
not get is counted and logged, never skipped in silence:

- ``missing`` and ``gaps``: readings the history no longer held (it is
  bounded) or that never reached it, as ``[first, last]`` ranges;
- ``duplicates``: readings at or below the position, dropped;
- ``resets``: the producer started a new numbering (a new epoch: its
  history folder was lost); the readings it took and lost are unknown;
- ``refused``: the producer's numbering went backwards in the same epoch
  (a restored or copied history: its newest number is below the position,
  or its reading at the position was taken at another time than the one
  processed): its readings are refused with a message until the operator
  deletes the position file.

Position and counters are saved after each page handed to ``handle``: a
consumer killed while handling a page is given that page again at its
restart (at-least-once for at most one page; ``handle`` should tolerate
it, e.g. by the sequence number).

Each request also names the consumer by its service name (``consumer=<name>``,
the same wherever it runs; its instance is its node, which changes when it
moves): the producer remembers where each consumer last asked from and says so in
``consumer_at``. A consumer without a position of its own for that source
(moved to another node, its state folder left behind) resumes there: the
follower asks again as soon as it handled new readings, so only a page it
was handling when it was stopped is given again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
import typing as t
import urllib.parse
import zlib

from nanoedge_ns import coapio, directory
from nanoedge_ns.history import write_atomically
from nanoedge_ns.readings import safe_name, state_dir_for

MAX_GAP_RANGES = 50

log = logging.getLogger("nanoedge_ns.follower")


class SequenceError(Exception):
    """A producer's numbering went backwards: its readings are refused."""


def _source_state() -> t.Dict[str, t.Any]:
    return {"epoch": None, "last_seq": 0, "head": 0, "received": 0, "duplicates": 0, "missing": 0, "gaps": [],
            "resets": 0, "refused": None, "last_taken_at": None, "resumed_from": None}


class Follower:
    """Numbered readings of one producer, in order, once, to ``handle``.

    ``start`` says where a source never seen before starts: ``"oldest"``
    (everything its history still holds) or ``"latest"`` (only what comes).
    ``path`` empty keeps the position in memory only (tests, benchmarks).
    """

    def __init__(self, name: str, path: str, handle: t.Callable[[t.Dict[str, t.Any]], None],
                 start: str = "oldest", clock: t.Callable[[], float] = time.time, sync: bool = True,
                 consumer: str = "") -> None:
        if start not in ("oldest", "latest"):
            raise ValueError("follower %s: start must be oldest or latest, got %r" % (name, start))
        self.name = name
        self.consumer = consumer or name
        self.path = path
        self.handle = handle
        self.start = start
        self.clock = clock
        self.sync = sync
        self.current: t.Optional[str] = None
        self.sources: t.Dict[str, t.Dict[str, t.Any]] = {}
        self.source_error: t.Optional[str] = None
        # when readings began to flow from the producer's current URI (its first answer there since it moved
        # or failed; this process's clock), and that URI: how long the consumer was without readings
        self.flowing_since: t.Optional[float] = None
        self.flowing_from: t.Optional[str] = None
        self._load()

    # --------------------------------------------------------------- state

    def _load(self) -> None:
        if not self.path:
            return
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            with open(self.path, "rb") as handle:
                stored = json.loads(handle.read().decode("utf-8"))
            self.current = stored["current"]
            for source, state in stored["sources"].items():
                self.sources[source] = dict(_source_state(), **state)
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SystemExit("follower %s: cannot read its position file %s (%s): fix or delete it"
                             % (self.name, self.path, exc)) from exc

    def save(self) -> None:
        if self.path:
            document = {"current": self.current, "sources": self.sources}
            write_atomically(self.path, json.dumps(document, sort_keys=True).encode(), self.sync)

    def since(self) -> int:
        """The ``since`` of the next history request."""
        state = self.sources.get(self.current or "")
        return state["last_seq"] if state else 0

    # -------------------------------------------------------------- pages

    def accept(self, page: t.Dict[str, t.Any]) -> bool:
        """Hand the new readings of one history page to ``handle``; True
        when the next page should be asked for at once (more to catch up,
        or the position moved to another source or epoch)."""
        source, epoch, last = str(page["source"]), str(page["epoch"]), int(page["last"])
        state = self.sources.get(source)
        if state is None:
            state = self.sources[source] = _source_state()
            state["epoch"] = epoch
            resume = page.get("consumer_at")
            if isinstance(resume, int) and 0 < resume <= last and int(page["since"]) < resume:
                # no position of its own (a moved consumer, a lost state folder): the producer's memory of it
                log.info("follower %s: resuming %s after seq %d, where it last asked from", self.name, source,
                         resume)
                # counted: the readings up to it were handled by the consumer's instance before this one
                state["last_seq"] = state["head"] = state["resumed_from"] = resume
                self.current = source
                self.save()
                return True
            if self.start == "latest" and last:
                state["last_seq"] = state["head"] = last
                self.current = source
                self.save()
                return True
        if source != self.current:
            self.current = source  # the first answer, or another source now answers at this address
            if int(page["since"]) != state["last_seq"]:
                self.save()
                return True  # asked from another source's position: ask again from this one's
        elif int(page["since"]) > state["last_seq"]:
            return True
        if state["refused"]:
            raise SequenceError(state["refused"])
        if state["epoch"] != epoch:
            log.warning("follower %s: %s began a new numbering (epoch %s, was %s after seq %d): whatever it took "
                        "after seq %d and did not keep is unknown", self.name, source, epoch, state["epoch"],
                        state["last_seq"], state["last_seq"])
            state.update(epoch=epoch, last_seq=0, resets=state["resets"] + 1)
            self.save()
            return True
        reused = (int(page["since"]) == state["last_seq"] and page.get("at_since") is not None
                  and state["last_taken_at"] is not None and page["at_since"] != state["last_taken_at"])
        if last < state["last_seq"] or reused:
            state["refused"] = ("follower %s: %s went back to seq %d (epoch %s) after seq %d was processed: its "
                                "readings are refused (restore its history, or delete %s to start again)"
                                % (self.name, source, last, epoch, state["last_seq"], self.path or "the position"))
            if reused:
                state["refused"] = ("follower %s: %s numbered another reading seq %d (taken at %s, not %s; epoch %s):"
                                    " its readings are refused (restore its history, or delete %s to start again)"
                                    % (self.name, source, state["last_seq"], page["at_since"],
                                       state["last_taken_at"], epoch, self.path or "the position"))
            log.error("%s", state["refused"])
            self.save()
            raise SequenceError(state["refused"])
        if int(page["since"]) == state["last_seq"] and page.get("missing"):
            self._gap(source, state, state["last_seq"] + 1, state["last_seq"] + int(page["missing"]),
                      "no longer in its history")
        for reading in page.get("readings", ()):
            self._one(source, state, reading)
        state["head"] = max(last, state["last_seq"])
        self.save()
        return bool(page.get("more"))

    def _one(self, source: str, state: t.Dict[str, t.Any], reading: t.Dict[str, t.Any]) -> None:
        seq = int(reading["seq"])
        if seq <= state["last_seq"]:
            state["duplicates"] += 1
            return
        if seq > state["last_seq"] + 1:
            self._gap(source, state, state["last_seq"] + 1, seq - 1, "not sent")
        reading.setdefault("source", source)
        self.handle(reading)
        state["last_seq"] = seq
        state["received"] += 1
        state["last_taken_at"] = reading.get("taken_at")

    def _gap(self, source: str, state: t.Dict[str, t.Any], first: int, last: int, why: str) -> None:
        count = last - first + 1
        log.warning("follower %s: %d reading(s) of %s missing, seq %d..%d (%s)", self.name, count, source, first,
                    last, why)
        state["missing"] += count
        state["gaps"] = (state["gaps"] + [[first, last]])[-MAX_GAP_RANGES:]
        state["last_seq"] = last

    # ----------------------------------------------------------- counters

    def counters(self) -> t.Dict[str, t.Any]:
        """What a benchmark reads (the consumer's ``/counters`` resource)."""
        now = self.clock()
        sources = {}
        for source, state in self.sources.items():
            taken = state["last_taken_at"]
            sources[source] = dict(state, lag_readings=max(0, state["head"] - state["last_seq"]),
                                   lag_s=None if taken is None else round(max(0.0, now - taken), 3))
        current = sources.get(self.current or "", {})
        totals = {key: sum(s[key] for s in sources.values())
                  for key in ("received", "duplicates", "missing", "resets")}
        return dict(totals, follower=self.name, current=self.current, sources=sources,
                    gaps=[dict(source=s, first=g[0], last=g[1]) for s, v in sources.items() for g in v["gaps"]],
                    refused=[v["refused"] for v in sources.values() if v["refused"]],
                    lag_readings=current.get("lag_readings", 0), lag_s=current.get("lag_s"),
                    source_error=self.source_error, flowing_from=self.flowing_from,
                    flowing_since=None if self.flowing_since is None else round(self.flowing_since, 3))

    # ------------------------------------------------------------ network

    async def fetch(self, client: coapio.Client, history_uri: str, limit: int = 2000) -> t.Dict[str, t.Any]:
        consumer = urllib.parse.quote(self.consumer, safe="")
        uri = "%s?since=%d&limit=%d&enc=zlib&consumer=%s" % (history_uri, self.since(), limit, consumer)
        payload, content_format = await client.exchange("GET", uri)
        if content_format == coapio.OCTET_STREAM:
            payload = zlib.decompress(payload)
        return t.cast(t.Dict[str, t.Any], json.loads(payload.decode("utf-8")))

    async def follow(self, client: coapio.Client, history_uri: t.Union[str, t.Callable[[], t.Optional[str]]],
                     poll: float = 1.0, limit: int = 2000,
                     legacy: t.Optional[t.Callable[[], t.Awaitable[None]]] = None,
                     resolver: t.Optional[t.Any] = None) -> None:
        """Catch up, then poll ``history_uri`` every ``poll`` s, forever.
        A producer without a history (4.04: an older image) is polled
        through ``legacy`` instead, when given.

        ``history_uri`` may be a function giving the current one (None: not
        known yet), with its ``resolver`` (``directory.Resolver``): a producer
        that moved is asked at once when the resolver learns of it (the
        position stays: the new producer is asked from the last sequence
        handled), and a producer that does not answer is looked up again."""
        reported = ""
        while True:
            again = False
            uri = history_uri() if callable(history_uri) else history_uri
            if resolver is not None:
                resolver.changed.clear()
            try:
                if uri is None:
                    raise ConnectionError("no address for the producer yet")
                before = self.since()
                answered, page = await directory.ask_unless_moved(resolver, self.fetch(client, uri, limit))
                if not answered or page is None:
                    continue  # the producer moved while it was asked: ask the new one at once
                # asking again at once after new readings also tells the producer they were handled (consumer_at)
                again = self.accept(page) or self.since() > before
                self.source_error = None
                self._flowing(uri)
                reported = ""
            except coapio.CoapError as exc:
                if exc.code == "4.04" and legacy is not None:
                    await legacy()
                else:
                    self._trouble(str(exc), reported)
                    reported = str(exc)
            except SequenceError as exc:
                self._trouble(str(exc), reported, logged=True)
                reported = str(exc)
            except (asyncio.TimeoutError, OSError, ValueError, KeyError, TypeError, zlib.error) as exc:
                message = "%s: %s" % (uri, exc or type(exc).__name__)
                self._trouble(message, reported)
                reported = message
                if resolver is not None and isinstance(exc, (asyncio.TimeoutError, OSError)):
                    resolver.failed()
            if not again:
                await self._pause(poll, resolver)

    async def follow_producer(self, client: coapio.Client, configured: str, service: str, poll: float = 1.0,
                              limit: int = 2000) -> None:
        """``follow`` the history of the producer ``configured`` (``service:<name>`` or its URI, as the
        deployment gives it): looked up as ``service`` at the node's directory and followed where it moves."""
        resolver = directory.producer_resolver(client, configured, service)
        watcher = asyncio.ensure_future(resolver.watch())
        try:
            await self.follow(client, lambda: None if resolver.current() is None
                              else t.cast(str, resolver.current()).rstrip("/") + "/history", poll, limit,
                              resolver=resolver)
        finally:
            watcher.cancel()

    @staticmethod
    async def _pause(poll: float, resolver: t.Optional[t.Any]) -> None:
        """``poll`` seconds, cut short when the resolver learns of a new address."""
        if resolver is None:
            await asyncio.sleep(poll)
            return
        moved = asyncio.ensure_future(resolver.changed.wait())
        try:
            await asyncio.wait({moved}, timeout=poll)
        finally:
            moved.cancel()

    def _flowing(self, uri: str) -> None:
        if self.flowing_since is None or uri != self.flowing_from:
            self.flowing_since, self.flowing_from = self.clock(), uri

    def _trouble(self, message: str, reported: str, logged: bool = False) -> None:
        self.source_error = message
        self.flowing_since = None
        if message != reported and not logged:
            log.warning("follower %s: %s", self.name, message)


def position_path(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, "follow-%s.json" % safe_name(name))


def open_follower(name: str, args: t.Any, handle: t.Callable[[t.Dict[str, t.Any]], None],
                  start: str = "oldest") -> Follower:
    """The follower the common options describe (``service.parser``); a state
    folder that cannot be written falls back to a temporary one, loudly."""
    directory = state_dir_for(name, args.state_dir)
    # the consumer's name at its producers: its service name, which a move does not change (its instance does)
    consumer = name
    try:
        os.makedirs(directory, exist_ok=True)
        return Follower(name, position_path(directory, name), handle, start=start, consumer=consumer)
    except OSError as exc:
        fallback = os.path.join(tempfile.gettempdir(), "nanoedge-%s" % name)
        log.error("%s: cannot keep its position in %s (%s); keeping it in %s instead, which does not survive "
                  "the service", name, directory, exc, fallback)
        return Follower(name, position_path(fallback, name), handle, start=start, consumer=consumer)


class LatestCounters:
    """The counters of a consumer that shows only the latest reading of each
    source (the display): it polls, so the readings between two polls are
    ``not_shown`` by design, not missing; a poll that brings the reading
    already shown is a ``duplicate``. Readings without ``seq`` (an older
    producer, or a resource that is not a stream) are counted as ``unnumbered``.
    ``flowing_since`` is when the source's readings began to come from the URI
    it is read from now (``flowing_from``): its first answer there since it
    moved or could not be read (``failed``)."""

    def __init__(self, name: str, clock: t.Callable[[], float] = time.time) -> None:
        self.name = name
        self.clock = clock
        self.sources: t.Dict[str, t.Dict[str, t.Any]] = {}

    def _state(self, label: str) -> t.Dict[str, t.Any]:
        return self.sources.setdefault(label, {"source": None, "epoch": None, "last_seq": None, "received": 0,
                                               "duplicates": 0, "not_shown": 0, "unnumbered": 0,
                                               "last_taken_at": None, "flowing_since": None, "flowing_from": None})

    def failed(self, label: str) -> None:
        """The source could not be read: its readings stopped flowing."""
        self._state(label)["flowing_since"] = None

    def saw(self, label: str, reading: t.Any, uri: t.Optional[str] = None) -> None:
        state = self._state(label)
        if state["flowing_since"] is None or uri != state["flowing_from"]:
            state.update(flowing_since=round(self.clock(), 3), flowing_from=uri)
        seq = reading.get("seq") if isinstance(reading, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            state["unnumbered"] += isinstance(reading, dict)
            return
        same_stream = (state["source"], state["epoch"]) == (reading.get("source"), reading.get("epoch"))
        if same_stream and state["last_seq"] is not None and seq <= state["last_seq"]:
            state["duplicates"] += 1
            return
        if same_stream and state["last_seq"] is not None:
            state["not_shown"] += seq - state["last_seq"] - 1
        state.update(source=reading.get("source"), epoch=reading.get("epoch"), last_seq=seq,
                     received=state["received"] + 1, last_taken_at=reading.get("taken_at"))

    def counters(self) -> t.Dict[str, t.Any]:
        now = self.clock()
        sources = {label: dict(state, lag_s=None if not isinstance(state["last_taken_at"], (int, float))
                               else round(max(0.0, now - state["last_taken_at"]), 3))
                   for label, state in self.sources.items()}
        totals = {key: sum(s[key] for s in sources.values()) for key in ("received", "duplicates", "not_shown")}
        return dict(totals, consumer=self.name, sources=sources)
