# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the host's files read under a root, and the warnings for sources skipped.

Every part of discovery reads through one ``Reader``, so a source that is
missing, unreadable or malformed is named the same way wherever it is read
(docs/contracts.md, "The profile").

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import os
import typing as t


class Reader:
    """Reads files under ``root`` and collects warnings for sources it must skip.

    Paths in warnings are the paths on the target (``/proc/meminfo``), not the
    root-prefixed ones, so warnings read the same on a real node and on a
    fixture tree.
    """

    def __init__(self, root: str = "/") -> None:
        self.root = root or "/"
        self.warnings: t.List[str] = []

    def path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def warn(self, message: str) -> None:
        # several values can come from one file; name its problem once
        if message not in self.warnings:
            self.warnings.append(message)

    def exists(self, path: str) -> bool:
        return os.path.exists(self.path(path))

    def lexists(self, path: str) -> bool:
        """Whether the entry is there, a link to what a recorded tree left out included."""
        return os.path.lexists(self.path(path))

    def isdir(self, path: str) -> bool:
        return os.path.isdir(self.path(path))

    def listdir(self, path: str) -> t.List[str]:
        """Sorted entries of a folder; [] when the folder does not exist."""
        try:
            return sorted(os.listdir(self.path(path)))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.warn("%s: unreadable (%s)" % (path, exc.strerror or exc))
            return []

    def text(self, path: str, *, required: bool = True) -> t.Optional[str]:
        """File content without trailing NULs and whitespace (device-tree strings end in NUL).

        A missing file is a warning only when ``required``; an unreadable or
        undecodable one always is.
        """
        try:
            with open(self.path(path), "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            if required:
                self.warn("%s: missing" % path)
            return None
        except OSError as exc:
            self.warn("%s: unreadable (%s)" % (path, exc.strerror or exc))
            return None
        try:
            return raw.decode("utf-8").rstrip("\0\n\r\t ")
        except UnicodeDecodeError:
            self.warn("%s: malformed (not UTF-8 text)" % path)
            return None

    def head(self, path: str, size: int) -> t.Optional[bytes]:
        """The first ``size`` bytes of a file (fewer when it is shorter); None, without a warning, when it
        cannot be read: the caller says what it could not learn."""
        try:
            with open(self.path(path), "rb") as handle:
                return handle.read(size)
        except OSError:
            return None

    def integer(self, path: str, *, required: bool = True) -> t.Optional[int]:
        value = self.text(path, required=required)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.warn("%s: malformed (expected an integer, got %r)" % (path, value[:40]))
            return None
