# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/contracts.md against the modules that hold the contracts: each marked table lists exactly
what the code knows, every enumeration and constant is in the text, every citation names a section."""

from __future__ import annotations

import json
import pathlib
import re
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import (
    _coap,
    _device_catalog,
    _labels,
    _leadership,
    _plan,
    _profile,
    _requirements,
)
from ansible_collections.nanoedge.core.plugins.module_utils._registry_server import directory, liveness
from ansible_collections.nanoedge.core.plugins.plugin_utils import _deployment, _service_description

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "contracts.md"
TEXT = DOC.read_text(encoding="utf-8")
CODE = re.compile(r"`([^`]+)`")
FENCED = re.compile(r"^```.*?^```$", re.M | re.S)
MARKER = re.compile(r"^<!-- contract: ([a-z-]+) -->$")
CITATION = re.compile(r'docs/contracts\.md[`]?,\s+"([^"]+)"')
# Namespaces, not labels: the text names them, the table lists the labels under them.
LABEL_NAMESPACES = (_labels.PREFIX, _labels.SWARM_NODE_PREFIX)


def tables(text: str) -> t.Dict[str, t.List[t.List[str]]]:
    """Marker name -> the rows (cells) of the table that follows ``<!-- contract: name -->``."""
    found: t.Dict[str, t.List[t.List[str]]] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        marker = MARKER.match(line)
        if not marker:
            continue
        rows = []
        for row in lines[index + 3:]:  # past the header and its rule
            if not row.startswith("|"):
                break
            rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
        found[marker.group(1)] = rows
    return found


TABLES = tables(TEXT)


def first_column(name: str) -> t.List[str]:
    """The name each row of a marked table is about: the first code span of its first cell."""
    names = []
    for row in TABLES[name]:
        spans = CODE.findall(row[0])
        assert spans, "%s: a row without a `name` in its first cell: %r" % (name, row)
        names.append(spans[0])
    return names


def profile_keys() -> t.List[str]:
    nested = {"cpu": _profile.CPU_KEYS, "memory_mb": _profile.MEMORY_KEYS, "storage_mb": _profile.STORAGE_KEYS,
              "power": _profile.POWER_KEYS}
    keys = []
    for key in _profile.TOP_LEVEL_KEYS:
        if key in nested:
            keys.extend("%s.%s" % (key, part) for part in nested[key])
        elif key == "devices":
            keys.extend("devices[].%s" % part for part in _profile.DEVICE_REQUIRED_KEYS + _profile.DEVICE_OPTIONAL_KEYS)
        else:
            keys.append(key)
    return keys


def label_rows() -> t.List[str]:
    # nanoedge.cap.<capability> is the label of the prefix constant nanoedge.cap.
    return [re.sub(r"<[a-z]+>$", "", name) for name in first_column("labels")]


def labels() -> t.List[str]:
    return [value for name, value in vars(_labels).items()
            if name.isupper() and isinstance(value, str) and value not in LABEL_NAMESPACES]


@pytest.mark.parametrize("table, expected", [
    ("profile-keys", profile_keys),
    ("placement-facets", lambda: list(_profile.PLACEMENT_FACETS)),
    ("catalog-keys", lambda: list(_device_catalog.ENTRY_KEYS + _device_catalog.MATCH_KEYS)),
    ("requirement-keys", lambda: list(_requirements.REQUIREMENT_KEYS)),
    ("description-keys", lambda: list(_service_description.DESCRIPTION_KEYS + _service_description.PLACEMENT_KEYS)),
    ("strategies", lambda: list(_plan.STRATEGIES)),
    ("result-keys", lambda: list(_plan.RESULT_KEYS + _plan.CARRIED_KEYS + (_plan.OPTIMAL_KEY,))),
    ("unplaced-keys", lambda: list(_plan.UNPLACED_KEYS)),
    ("causes", lambda: list(_plan.CAUSE_CODES)),
    ("plan-keys", lambda: list(_plan.PLAN_KEYS)),
])
def test_a_table_lists_exactly_what_the_code_knows(table: str, expected: t.Callable[[], t.List[str]]) -> None:
    listed = first_column(table)
    assert sorted(listed) == sorted(expected())
    assert len(set(listed)) == len(listed), "%s lists a key twice" % table


def test_the_labels_table_lists_every_label() -> None:
    assert sorted(label_rows()) == sorted(labels())
    for namespace in LABEL_NAMESPACES:
        assert "`%s`" % namespace in TEXT


def test_the_requirement_defaults() -> None:
    defaults = {CODE.findall(row[0])[0]: CODE.findall(row[1])[0] for row in TABLES["requirement-keys"]}
    assert {key: json.loads(value) for key, value in defaults.items()} == _requirements.REQUIREMENT_DEFAULTS


def test_the_detail_limit() -> None:
    assert "at most %d nodes (`DETAIL_NODES`)" % _plan.DETAIL_NODES in TEXT


def test_the_default_strategy() -> None:
    assert "`%s` (default)" % _plan.DEFAULT_STRATEGY in TEXT


def section(title: str) -> str:
    start = TEXT.index("\n## %s\n" % title)
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start:end if end != -1 else len(TEXT)]


def code_spans(text: str) -> t.Set[str]:
    """The `code` of a text, outside fenced blocks (whose fences would pair up with the spans)."""
    return set(CODE.findall(FENCED.sub("", text)))


@pytest.mark.parametrize("title, values", [
    ("The profile", lambda: (_profile.POWER_SOURCES + _profile.NETWORK_TYPES + _profile.DEVICE_KINDS
                             + _profile.DEVICE_BUSES + (_profile.NODE_NAME_RE.pattern, _profile.CAPABILITY_RE.pattern,
                                                        str(_profile.SCHEMA_VERSION)))),
    ("The allocation result and the plan file", lambda: (_plan.MOVE_KEYS + _plan.PLAN_SERVICE_FIELDS
                                                         + _plan.PLAN_NODE_FIELDS)),
    ("The CoAP API", lambda: tuple(str(value) for value in (_coap.CF_TEXT, _coap.CF_JSON, _coap.CF_CBOR,
                                                            _leadership.MAX_BEAT_BYTES))
     + _leadership.PROFILE_STATES + liveness.STATES
     + tuple(sorted(directory.INSTANCE_KEYS)) + (str(directory.MAX_INSTANCES), str(directory.MAX_BODY))),
    ("Service description", lambda: (_deployment.DIRECTORY_ENV, _deployment.SELF_URI_ENV, _deployment.INSTANCE_ENV,
                                     _deployment.SERVICE_PREFIX + "<name>", '"directory": true')),
])
def test_every_value_is_named(title: str, values: t.Callable[[], t.Sequence[str]]) -> None:
    named = code_spans(section(title))
    assert [value for value in values() if value not in named] == []


def test_the_registry_port() -> None:
    assert "the default port is %d/udp" % _coap.DEFAULT_PORT in TEXT


def test_every_citation_names_a_section() -> None:
    titles = {title.lower() for title in re.findall(r"^##+ (.+)$", TEXT, re.M)}

    def known(cited: str) -> bool:
        name = cited.lower()
        return name in titles or "the " + name in titles

    cited = {}
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or parts[0].startswith(".") or parts[:2] == ("tests", "output") \
                or path.suffix not in (".py", ".md", ".yml", ".yaml", ".j2", ".txt", ".cfg", ""):
            continue
        for title in CITATION.findall(path.read_text(encoding="utf-8", errors="replace")):
            title = " ".join(title.split())
            if not known(title):
                cited.setdefault(str(path.relative_to(ROOT)), []).append(title)
    assert cited == {}


def test_tables_are_found() -> None:
    assert sorted(TABLES) == sorted(["profile-keys", "catalog-keys", "placement-facets", "requirement-keys", "description-keys",
                                     "labels", "strategies", "result-keys", "unplaced-keys", "causes", "plan-keys",
                                     "coap-resources", "coap-errors"])
    assert all(TABLES.values())
