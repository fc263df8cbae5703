# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon's files: the state file and the decision log."""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import time
import typing as t


def now_iso(wall: t.Optional[float] = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if wall is None else wall, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def write_json_atomically(path: str, value: t.Any) -> None:
    """Readers see the old file or the new one, never a torn one, even after a power cut."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
