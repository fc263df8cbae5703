# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where aiocoap and cbor2 are missing, the server package still imports and
the server says what is missing (in a fresh interpreter that cannot find them)."""

from __future__ import annotations

import os
import subprocess
import sys

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import aiocoap_dep

WITHOUT_LIBRARIES = r"""
import importlib, importlib.abc, pkgutil, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("aiocoap", "cbor2"):
            raise ModuleNotFoundError("No module named %r" % name)
        return None

sys.meta_path.insert(0, Missing())
from ansible_collections.nanoedge.core.plugins.module_utils import _registry_server

for module in sorted(m.name for m in pkgutil.iter_modules(_registry_server.__path__)):
    importlib.import_module("%s.%s" % (_registry_server.__name__, module))
    print(module)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.cli import main
main(["--db", sys.argv[1]])
"""


def test_here_the_libraries_are_found():
    assert (aiocoap_dep.HAS_AIOCOAP, aiocoap_dep.AIOCOAP_IMPORT_ERROR) == (True, None)
    assert aiocoap_dep.cbor2 is not None
    aiocoap_dep.require_aiocoap()


def test_without_them_the_package_imports_and_the_server_names_what_is_missing(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", WITHOUT_LIBRARIES, str(tmp_path / "registry.sqlite")],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.stdout.split() == [
        "__main__", "access", "aiocoap_dep", "aiocoap_tuning", "beats", "cli", "codec", "directory",
        "directory_resources", "leadership", "limits",
        "liveness", "model", "oscore_site", "resources", "server", "store", "uploads", "watchdog", "wellformed"]
    assert (proc.returncode, proc.stderr) == (1, (
        "nanoedge.core.registry: the Python library aiocoap is missing for %s (ModuleNotFoundError: No module named"
        " 'aiocoap'); the nanoedge.core.registry role installs it in the registry's virtual environment\n"
        % sys.executable))
    assert not (tmp_path / "registry.sqlite").exists()
