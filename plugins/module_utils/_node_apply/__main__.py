# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ansible_collections.nanoedge.core.plugins.module_utils._node_apply``: one request on standard
input, one result on standard output (see ``cli.py``)."""

from __future__ import annotations

from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
