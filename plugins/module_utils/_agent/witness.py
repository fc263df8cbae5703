# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The witness file, ``<state_dir>/witness.json``: the highest term this worker ever granted, and to whom.

Written atomically (a temporary file beside it, then os.replace) whenever
the highest term or the holder changes, and before a beat carries a new
grant: a worker that restarts never grants a term below one it granted
before, and the fence at the node reads the same file. A file that cannot be
read back is never overwritten: the worker then grants nothing until
someone looks at it (the fence refuses changes for the same reason).

Standard library only, Python >= 3.9: this runs on the workers.
"""

from __future__ import annotations

import datetime
import json
import os
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._atomic import write_atomically
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import (
    DEFAULT_LEASE, MAX_LEASE, MAX_TERM, Ask, Witness,
)

FILE_NAME = "witness.json"
# A worker that stopped while it held a grant lost the grant's expiry with it; the manager may still count
# on it. It grants to no other manager for two of the grant's leases after it starts again (the lease
# is in the file; two default leases when an older file has none).
RESTART_QUIET_LEASES = 2


class WitnessFileError(Exception):
    """The witness file cannot be read or written; the message names it and says why."""


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def load(path: str) -> t.Tuple[int, t.Optional[str]]:
    """The highest term and the holder in the witness file at ``path``; (0, None) when there is none yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return 0, None
    except (OSError, ValueError) as exc:
        raise WitnessFileError("witness file %s: %s" % (path, exc)) from None
    highest = data.get("highest_term") if isinstance(data, dict) else None
    if isinstance(highest, bool) or not isinstance(highest, int) or not 0 <= highest <= MAX_TERM:
        raise WitnessFileError("witness file %s: highest_term must be an integer from 0 to 2**53, got %r"
                               % (path, highest))
    holder = data.get("holder")
    if holder is not None and not isinstance(holder, str):
        raise WitnessFileError("witness file %s: holder must be a name or null, got %r" % (path, holder))
    return highest, holder


def held_lease(path: str) -> float:
    """The lease of the grant the witness file records (the default lease when it names none)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return DEFAULT_LEASE
    lease = data.get("lease") if isinstance(data, dict) else None
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 0 < lease <= MAX_LEASE:
        return DEFAULT_LEASE
    return float(lease)


def write(path: str, content: t.Mapping[str, t.Any], clock: t.Callable[[], str] = _utc_now) -> None:
    """Replace the file at ``path`` with ``content`` and "updated", atomically, readable by all (0644)."""
    data = dict(content, updated=clock())
    try:
        write_atomically(path, json.dumps(data, sort_keys=True) + "\n", mode=0o644)
    except OSError as exc:
        raise WitnessFileError("witness file %s: %s" % (path, exc.strerror or exc)) from None


class WitnessKeeper:
    """The worker's Witness and its file, kept in step: ``persist`` before any beat that carries a grant."""

    def __init__(self, state_dir: str, priority_window: float,
                 clock: t.Callable[[], float] = time.monotonic) -> None:
        self.path = os.path.join(state_dir, FILE_NAME)
        self.clock = clock
        self.broken: t.Optional[str] = None
        try:
            highest, holder = load(self.path)
        except WitnessFileError as exc:
            self.broken = str(exc)
            highest, holder = 0, None
        self.witness = Witness(highest_term=highest, priority_window=priority_window, clock=clock)
        self.quiet_until = clock() + RESTART_QUIET_LEASES * held_lease(self.path) if holder is not None else 0.0
        self.held_before = holder
        # what the file says now: written again as soon as it differs from the witness
        self.written: t.Optional[t.Tuple[int, t.Optional[str]]] = None if self.broken else (highest, holder)

    @property
    def enabled(self) -> bool:
        return self.broken is None

    def on_ask(self, registry: str, ask: Ask) -> str:
        """The Witness's answer to an ask, unless the file is broken or the worker has only just restarted."""
        if self.broken is not None:
            return "refused: %s" % self.broken
        wait = self.quiet_until - self.clock()
        # the manager it held the grant for may have it again: two grants to one manager never make two leaders
        if wait > 0 and ask.manager != self.held_before:
            return "refused: restarted while granted to %s; a witness again in %.1f s" % (self.held_before, wait)
        return self.witness.on_ask(registry, ask)

    def persist(self) -> bool:
        """Write the file when the highest term or the holder changed; False while the file is broken.

        WitnessFileError when it cannot be written: the beat then carries no grant."""
        if self.broken is not None:
            return False
        now = (self.witness.highest_term, self.witness.holder)
        if now == self.written:
            return True
        write(self.path, self.witness.snapshot())
        self.written = now
        return True
