# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replacing a small file whole: readers see the old content or the new, never a torn file.

The one way the collection writes its state files (the reconcile daemon's
state, the registry's term file, the agent's witness file, the node's fence
file). Standard library only; runs on managed nodes (Python >= 3.9).
"""

from __future__ import annotations

import os
import tempfile
import typing as t


def write_atomically(path: str, content: t.Union[str, bytes], mode: t.Optional[int] = None,
                     durable: bool = True) -> None:
    """Write ``content`` to a temporary file beside ``path`` and rename it over ``path``.

    ``mode``: the new file's permissions (default: 0600, as the temporary file is made);
    ``durable``: fsync the file and its folder, so the new content survives a power cut.
    The temporary file is removed on any error, which propagates (OSError)."""
    folder = os.path.dirname(os.path.abspath(path))
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            if durable:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    if durable:
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
