# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The example nanoservices are programs, not plugins: make their shared
library importable and load each program from its file."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

NANOSERVICES = Path(__file__).resolve().parents[3] / "nanoservices"
if str(NANOSERVICES / "common") not in sys.path:
    sys.path.insert(0, str(NANOSERVICES / "common"))


def load_service(name: str) -> types.ModuleType:
    module_name = "nanoedge_service_%s" % name
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, NANOSERVICES / name / ("%s.py" % name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def service_module():
    return load_service
