# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observing the profile registry over CoAP."""

from __future__ import annotations

import os
import typing as t

try:
    import aiocoap
    import aiocoap.error
    HAS_AIOCOAP = True
    AIOCOAP_IMPORT_ERROR: t.Optional[str] = None
except ImportError as exc:  # pragma: no cover - the role installs aiocoap
    aiocoap = None  # type: ignore[assignment]
    HAS_AIOCOAP = False
    AIOCOAP_IMPORT_ERROR = "%s: %s" % (type(exc).__name__, exc)

CF_JSON = 50


def describe_error(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno)
    text = str(exc)
    return text if text else type(exc).__name__

