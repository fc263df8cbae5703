# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m ansible_collections.nanoedge.core.plugins.module_utils._agent``."""

from __future__ import annotations

from ansible_collections.nanoedge.core.plugins.module_utils._agent.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
