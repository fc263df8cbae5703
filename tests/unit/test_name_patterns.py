# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names are whole-string matches everywhere: ``re.match`` with ``^...$`` lets a
trailing newline through (node ``w1\\n``, capability ``pom\\n``), and so do the
Jinja ``match`` test and filter with a pattern ending in ``$``."""

from __future__ import annotations

import re
import typing as t

import pytest

from ansible_collections.nanoedge.core.tests.unit.test_layout import ROOT, tracked

# Built from parts so that this file does not match itself.
PREFIX_MATCH = re.compile(r"(?<![\w.])re\." + r"match\(|\b[A-Za-z_][A-Za-z0-9_]*\." + r"match\(")
JINJA_PATTERN = re.compile(r"""(?:\bis\s+match\s*\(|['"]match['"]\s*,|regex_search\s*\()\s*(['"])(.*?)\1""")


def _sources(suffixes: t.Sequence[str], prefixes: t.Sequence[str]) -> t.List[t.Any]:
    return [path for path in tracked(prefixes) if path.suffix in suffixes]


def test_python_validators_match_whole_strings() -> None:
    found = ["%s:%d" % (path.relative_to(ROOT).as_posix(), number)
             for path in _sources((".py",), ("plugins/", "tools/", "nanoservices/", "roles/", "bench/"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if PREFIX_MATCH.search(line) and "fullmatch" not in line]
    assert found == []  # use pattern.fullmatch (or search/finditer for what is not a whole value)


def test_jinja_patterns_end_with_backslash_z() -> None:
    found = ["%s: %s" % (path.relative_to(ROOT).as_posix(), match.group(2))
             for path in _sources((".yml", ".yaml", ".j2"), ("roles/", "playbooks/", "extensions/"))
             for match in JINJA_PATTERN.finditer(path.read_text(encoding="utf-8"))
             if match.group(2).endswith("$")]
    assert found == []  # '$' also matches before a final newline: end the pattern with \Z


@pytest.mark.parametrize("line, caught", [
    ("if not NODE_NAME_RE." + "match(node):", True),
    ("re." + "match(r'^a$', value)", True),
    ("NODE_NAME_RE.fullmatch(node)", False),
    ("_ARM_ARCH_RE.search(model_name)", False),
])
def test_the_python_check_itself(line: str, caught: bool) -> None:
    assert bool(PREFIX_MATCH.search(line)) is caught


@pytest.mark.parametrize("text, pattern", [
    ("x is match('^[a-z]+$')", "^[a-z]+$"),
    ("xs | select('match', '^([0-9a-f]{2}){0,7}\\Z')", "^([0-9a-f]{2}){0,7}\\Z"),
    ('x | regex_search("^v[0-9]+$")', "^v[0-9]+$"),
])
def test_the_jinja_check_itself(text: str, pattern: str) -> None:
    assert [m.group(2) for m in JINJA_PATTERN.finditer(text)] == [pattern]
