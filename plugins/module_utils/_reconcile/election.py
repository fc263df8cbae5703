# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which manager acts: the managers before this one in the priority list."""

from __future__ import annotations


class Peer:
    """A manager before this one in the priority list."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.failures = 0
        self.up = True  # until it fails probe_failures times in a row
        self.last_error = ""

