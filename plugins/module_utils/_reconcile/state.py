# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon's files: the state file and the decision log."""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._atomic import write_atomically
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import (
    Fingerprint, valid_fingerprint_entry,
)

LOG = logging.getLogger("nanoedge.reconcile")


def now_iso(wall: t.Optional[float] = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if wall is None else wall, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def write_json_atomically(path: str, value: t.Any, durable: bool = True) -> None:
    """Readers see the old file or the new one, never a torn one; ``durable``: even after a power cut."""
    write_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n", durable=durable)


class StateFiles:
    """STATE_DIR/state.json (the daemon as it stands, replaced whole) and
    STATE_DIR/decisions.jsonl (one JSON object per decision, appended)."""

    def __init__(self, state_dir: str) -> None:
        self.state_path = os.path.join(state_dir, "state.json")
        self.decisions_path = os.path.join(state_dir, "decisions.jsonl")

    def load(self) -> t.Tuple[t.Optional[Fingerprint], t.Optional[t.Dict[str, t.Any]]]:
        """(applied, last_run) as the state file left them; None for what is missing or malformed."""
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                state = json.load(handle)
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError) as exc:
            LOG.warning("ignoring unreadable %s: %s", self.state_path, exc)
            return None, None
        if not isinstance(state, dict):
            return None, None
        applied = state.get("applied")
        if not (isinstance(applied, dict) and all(valid_fingerprint_entry(v) for v in applied.values())):
            applied = None
        last_run = state.get("last_run")
        return applied, last_run if isinstance(last_run, dict) else None

    def write(self, state: t.Mapping[str, t.Any], durable: bool = True) -> None:
        try:
            write_json_atomically(self.state_path, state, durable)
        except OSError as exc:
            LOG.error("error: cannot write %s: %s", self.state_path, exc)

    def append_decision(self, record: t.Mapping[str, t.Any]) -> None:
        try:
            with open(self.decisions_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as exc:
            LOG.error("error: cannot append to %s: %s", self.decisions_path, exc)
