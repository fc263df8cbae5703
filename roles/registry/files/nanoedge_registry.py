# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge.core CoAP profile registry: the program the nanoedge.core.registry
role runs. The server is the collection's own code, installed by the role
under LIB/ansible_collections/nanoedge/core/plugins/module_utils/ (LIB is the
folder ``lib`` beside this file); ``--help`` lists the options."""

from __future__ import annotations

import os
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")

if __name__ == "__main__":
    sys.path.insert(0, LIB)
    try:
        from ansible_collections.nanoedge.core.plugins.module_utils._registry_server.cli import main
    except ImportError as exc:
        sys.exit("nanoedge.core.registry: cannot import the registry code from %s (%s); "
                 "install it with the nanoedge.core.registry role" % (LIB, exc))
    sys.exit(main())
