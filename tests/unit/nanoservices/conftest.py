# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The example nanoservices are programs, not plugins. Inside their image
the shared library nanoedge_ns is on the path (/opt/nanoedge/lib); here
nanoservices/common stands in for it, and each program is imported by name
from the collection's tree."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

NANOSERVICES = Path(__file__).resolve().parents[3] / "nanoservices"
if str(NANOSERVICES / "common") not in sys.path:
    sys.path.insert(0, str(NANOSERVICES / "common"))


def load_service(name: str) -> types.ModuleType:
    return importlib.import_module("ansible_collections.nanoedge.core.nanoservices.%s.%s" % (name, name))


@pytest.fixture(scope="session")
def service_module():
    return load_service
