# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The label keys have one home: code imports them from module_utils _labels, and every
label the collection's plugins, roles, playbooks and documents name is one of them."""

from __future__ import annotations

import ast
import pathlib
import re
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _labels

ROOT = pathlib.Path(__file__).resolve().parents[4]
HOME = ROOT / "plugins" / "module_utils" / "_labels.py"
# Documentation strings of plugins and modules may spell a label: they are read, not run.
DOC_NAMES = ("DOCUMENTATION", "EXAMPLES", "RETURN")
IMAGE_LABEL = re.compile(r"io\.nanoedge\.[a-z][a-z0-9_.]*[a-z0-9]")
LABELS = {value for name, value in vars(_labels).items() if name.isupper() and isinstance(value, str)}


def files(*parts: str, suffixes: t.Sequence[str] = (".py", ".yml", ".yaml", ".md", ".j2")) -> t.List[pathlib.Path]:
    found = []
    for part in parts:
        base = ROOT / part
        candidates = [base] if base.is_file() else sorted(base.rglob("*"))
        found.extend(path for path in candidates if path.is_file() and path.suffix in suffixes)
    return found


def code_strings(path: pathlib.Path) -> t.List[t.Tuple[int, str]]:
    """The string constants of a Python file, without docstrings and documentation blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        if isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id in DOC_NAMES
                                                for target in node.targets):
            skipped.add(id(node.value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped]


def test_the_labels() -> None:
    assert (_labels.SERVICE_LABEL, _labels.REQUIREMENTS_LABEL, _labels.DIGEST_LABEL, _labels.NODE_LABEL,
            _labels.NETWORK_LABEL) == ("io.nanoedge.service", "io.nanoedge.requirements", "io.nanoedge.digest",
                                       "io.nanoedge.node", "io.nanoedge.network")
    assert all(value.startswith(_labels.PREFIX) for name, value in vars(_labels).items()
               if name.isupper() and isinstance(value, str) and not name.startswith("SWARM_"))
    assert all(value.startswith(_labels.SWARM_NODE_PREFIX) for name, value in vars(_labels).items()
               if name.startswith("SWARM_"))


@pytest.mark.parametrize("path", [p for p in files("plugins", suffixes=(".py",)) if p != HOME],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_code_imports_the_labels(path: pathlib.Path) -> None:
    spelled = ["line %d: %r" % (line, value) for line, value in code_strings(path)
               if IMAGE_LABEL.fullmatch(value) or value == _labels.PREFIX
               or (value in LABELS and value.startswith(_labels.SWARM_NODE_PREFIX))]
    assert not spelled, "spell labels as the constants of module_utils _labels"


@pytest.mark.parametrize("path", files("plugins", "roles", "playbooks", "docs", "molecule", "README.md"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_label_named_is_known(path: pathlib.Path) -> None:
    unknown = sorted(set(IMAGE_LABEL.findall(path.read_text(encoding="utf-8"))) - LABELS)
    assert not unknown, "not a label of module_utils _labels"
