# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one canonical JSON encoding (docs/contracts.md, "CoAP API").

Keys sorted, no whitespace, UTF-8 with non-ASCII characters as themselves
(no ``\\u`` escapes), NaN and Infinity refused: equal values give equal bytes,
so the bytes can be compared and hashed. The profile registry serves profiles
in this form and names them by its SHA-256 (the ETag); reporters send it.
Standard library only, Python >= 3.9, no Ansible imports.
"""

from __future__ import annotations

import json
import typing as t


def canonical_json(value: t.Any) -> bytes:
    """``value`` as canonical JSON; ValueError for NaN or Infinity, TypeError for what JSON cannot hold."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")
