# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The libraries the registry server needs beyond the standard library,
imported here and nowhere else in the package.

The collection's module_utils are installed whole on every node, also where
only the reporting agent or a module runs and the server's libraries are
absent: there the package must still import (its classes are then defined on
stand-ins, never served), and the server must say what is missing instead of
failing with a traceback.
"""

from __future__ import annotations

import sys

from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import PROG

__all__ = [
    "AIOCOAP_IMPORT_ERROR", "HAS_AIOCOAP", "BlockOption", "Code", "ObservableResource", "PathCapable", "Resource", "Site",
    "WKCResource", "aiocoap", "cbor2", "require_aiocoap",
]

try:
    import aiocoap
    import aiocoap.error
    import aiocoap.resource
    from aiocoap.numbers.codes import Code
    from aiocoap.optiontypes import BlockOption
    from aiocoap.resource import ObservableResource, PathCapable, Resource, Site, WKCResource
except ImportError as exc:  # pragma: no cover - depends on the node
    HAS_AIOCOAP = False
    AIOCOAP_IMPORT_ERROR = "%s: %s" % (type(exc).__name__, exc)
    aiocoap = None  # type: ignore[assignment]
    Code = BlockOption = None  # type: ignore[assignment,misc]

    # Distinct stand-ins: a class may not list the same base twice.
    class ObservableResource:  # type: ignore[no-redef]
        pass

    class PathCapable:  # type: ignore[no-redef]
        pass

    class Resource:  # type: ignore[no-redef]
        pass

    class Site:  # type: ignore[no-redef]
        pass

    class WKCResource:  # type: ignore[no-redef]
        pass
else:
    HAS_AIOCOAP = True
    AIOCOAP_IMPORT_ERROR = None

try:
    import cbor2
except ImportError:  # pragma: no cover - the role always installs cbor2; without it the server speaks JSON only
    cbor2 = None


def require_aiocoap() -> None:
    """SystemExit naming the interpreter when aiocoap is missing."""
    if not HAS_AIOCOAP:
        raise SystemExit("%s: the Python library aiocoap is missing for %s (%s); the nanoedge.core.registry role "
                         "installs it in the registry's virtual environment" % (PROG, sys.executable, AIOCOAP_IMPORT_ERROR))
