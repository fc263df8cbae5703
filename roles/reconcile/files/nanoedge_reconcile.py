# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge continuous reconcile, the program the nanoedge.core.reconcile role runs.

The daemon is the collection's own code (module_utils/_reconcile), which the
role installs under lib/ansible_collections/nanoedge/core/plugins/module_utils/
next to this file. Exit status 2 when that code cannot be imported.
"""

from __future__ import annotations

import os
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")

if __name__ == "__main__":
    sys.path.insert(0, LIB)
    try:
        from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.cli import main
    except ImportError as exc:
        print("nanoedge-reconcile: cannot import the daemon's code from %s (%s); "
              "install it with the nanoedge.core.reconcile role" % (LIB, exc), file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
