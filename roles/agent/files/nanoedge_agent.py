# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge reporting agent. The program is the collection's module
plugins/module_utils/_agent/ (a package), installed by the nanoedge.core.agent role
under lib/ beside this file (or the folder given with --lib)."""

import os
import sys


def lib_folder(argv):
    """--lib DIR or lib/ beside this file: needed before anything can be imported."""
    for index, arg in enumerate(argv):
        if arg == "--lib" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--lib="):
            return arg[len("--lib="):]
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")


if __name__ == "__main__":
    LIB = lib_folder(sys.argv[1:])
    sys.path.insert(0, LIB)
    try:
        from ansible_collections.nanoedge.core.plugins.module_utils._agent.cli import main
    except ImportError as exc:
        print("nanoedge-agent: cannot import the discovery and reporting code from %s (%s); "
              "install it with the nanoedge.core.agent role"
              % (os.path.join(LIB, "ansible_collections", "nanoedge", "core", "plugins", "module_utils"), exc),
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
