# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared code of the example nanoservices (nanoservices/*/).

Standard library only; the CoAP helpers in ``coapio`` import aiocoap when
they are first used, so the pure logic can be tested and reused without it.
Runs on Python >= 3.9 (Raspberry Pi OS bullseye).
"""

from __future__ import annotations

__version__ = "1.0.0"
