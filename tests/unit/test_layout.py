# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layout shows the architecture: source files stay small enough to read,
and the collection's code is imported by name, never loaded from a file path."""

from __future__ import annotations

import pathlib
import re
import typing as t

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE_SUFFIXES = (".py", ".yml", ".yaml", ".j2", ".sh")
MAX_LINES = 500
# Built from parts so that this file does not match itself.
LOAD_BY_PATH = re.compile("|".join((r"spec_from_" + "file_location", r"\brunpy\.run_" + "path", r"\bimp\.load_" + "source",
                                    r"SourceFile" + "Loader")))


def tracked(prefixes: t.Sequence[str] = ("",), skip: t.Sequence[str] = ()) -> t.List[pathlib.Path]:
    """The project's own source files (not build output, virtual environments or fixture trees)."""
    found = []
    for path in sorted(ROOT.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        parts = relative.split("/")
        if (not path.is_file() or path.suffix not in SOURCE_SUFFIXES or any(p.startswith(".") for p in parts)
                or "output" in parts[:3] or "fixtures" in parts or parts[0] == "testbed"
                or not relative.startswith(tuple(prefixes)) or relative.startswith(tuple(skip))):
            continue
        found.append(path)
    return found


def test_the_tree_is_found():
    names = {path.relative_to(ROOT).as_posix() for path in tracked()}
    assert {"plugins/filter/allocate.py", "roles/agent/files/nanoedge_agent.py", "playbooks/site.yml"} <= names


@pytest.mark.parametrize("path", tracked(skip=("tests/",)), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_source_file_outside_tests_is_long(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, "%s has %d lines (split it by concern)" % (path.relative_to(ROOT), lines)


def test_nothing_is_imported_by_file_path():
    offenders = ["%s:%d" % (path.relative_to(ROOT), number)
                 for path in tracked() if path.suffix == ".py"
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if LOAD_BY_PATH.search(line)]
    assert offenders == []
