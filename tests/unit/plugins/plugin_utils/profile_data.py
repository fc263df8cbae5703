# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requirement documents the service discovery tests share: the label, no requirement, and spo2's."""

from __future__ import annotations

LABEL = "io.nanoedge.requirements"
NONE = {"capabilities": [], "cpu": 0, "memory_mb": 0, "storage_mb": 0, "power": "", "network": "",
        "min_battery_percent": 0}
SPO2 = {"capabilities": ["pom"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "ac", "network": "wifi"}
SPO2_NORMALIZED = dict(NONE, **SPO2)
