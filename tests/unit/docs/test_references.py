# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contracts' reference is docs/contracts.md: no file of the collection cites the design
document that came before it, which is not part of the repository."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
OUTSIDE = "DESIGN.md"


def collection_files():
    """What the collection holds: every file but version control's and test output."""
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if (path.is_file() and not parts[0].startswith(".") and parts[:2] != ("tests", "output")
                and "__pycache__" not in parts):
            yield path


def test_no_file_cites_the_old_design_document() -> None:
    me = pathlib.Path(__file__).resolve()
    citing = [str(path.relative_to(ROOT)) for path in collection_files()
              if path.resolve() != me and OUTSIDE.encode() in path.read_bytes()]
    assert citing == []
