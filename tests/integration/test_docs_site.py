# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docs site as ``make docs`` builds it (``tools/docs_site.py``, Sphinx with -W, from this copy of the
collection): its start page links every plugin and role the collection's tree holds, and the guides; every
page it names exists, and so does every file any page links to; each plugin's and role's page is the one of
that plugin or role, a role's with every option of its argument specs."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import typing as t
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import COLLECTION_ROOT  # pylint: disable=import-error

# plugins/ folders that hold no pages of their own (action plugins document as their modules)
NOT_DOCUMENTED = {"action", "doc_fragments", "module_utils", "plugin_utils"}
GUIDES = ("guide/user-guide.html", "guide/contracts.html", "guide/leadership.html")
REFERENCE = "collections/nanoedge/core/"
# what the build needs beyond ansible-core: requirements-dev.txt installs these into the venv
BUILD_MODULES = ("antsibull_docs", "sphinx", "myst_parser", "sphinx_ansible_theme")
TIMEOUT = 600


class Links(HTMLParser):
    """What a page loads or links to (href and src: pages, stylesheets, scripts, images), the ids of its
    elements and the text of its title."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: t.List[str] = []
        self.ids: t.Set[str] = set()
        self.h1: t.List[str] = []
        self._in_h1 = False

    def handle_starttag(self, tag: str, attrs: t.List[t.Tuple[str, t.Optional[str]]]) -> None:
        values = dict(attrs)
        self.targets.extend(t.cast(str, values[key]) for key in ("href", "src") if values.get(key))
        if values.get("id"):
            self.ids.add(t.cast(str, values["id"]))
        self._in_h1 = self._in_h1 or tag == "h1"

    def handle_endtag(self, tag: str) -> None:
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._in_h1:
            self.h1.append(data)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def local_pages(page: Path, links: Links) -> t.Set[Path]:
    """The files of the site a page links to or loads, without query and fragment."""
    found = set()
    for target in links.targets:
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or not parts.path:
            continue
        found.add((page.parent / parts.path).resolve())
    return found


def plugins_in_tree() -> t.List[t.Tuple[str, str]]:
    """(name, type) of every plugin in plugins/, as antsibull-docs names its page: <name>_<type>.html."""
    found = []
    for folder in sorted(p for p in (COLLECTION_ROOT / "plugins").iterdir() if p.is_dir()):
        if folder.name in NOT_DOCUMENTED or folder.name.startswith("_"):
            continue
        kind = "module" if folder.name == "modules" else folder.name
        names = {p.stem for p in folder.iterdir() if p.suffix in (".py", ".yml", ".yaml")
                 and not p.stem.startswith("_")}
        found.extend((name, kind) for name in sorted(names))
    return found


ROLES = sorted(p.name for p in (COLLECTION_ROOT / "roles").iterdir() if p.is_dir())
PLUGINS = plugins_in_tree()


def missing_tools() -> t.List[str]:
    missing = [name for name in BUILD_MODULES if importlib.util.find_spec(name) is None]
    bindir = Path(sys.executable).parent
    missing += [name for name in ("antsibull-docs", "sphinx-build", "ansible-doc")
                if not (bindir / name).exists() and not shutil.which(name)]
    return missing


@pytest.fixture(scope="module")
def site(ansible_env: t.Dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site's html/ folder."""
    missing = missing_tools()
    if missing:
        pytest.skip("the docs site needs %s (pip install -r requirements-dev.txt)" % ", ".join(missing))
    dest = tmp_path_factory.mktemp("docs")
    proc = subprocess.run([sys.executable, str(COLLECTION_ROOT / "tools" / "docs_site.py"), str(COLLECTION_ROOT),
                           str(dest)], env=ansible_env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, "docs_site.py failed (%d):\n%s%s" % (proc.returncode, proc.stdout, proc.stderr)
    return dest / "html"


@pytest.fixture(scope="module")
def index(site: Path) -> t.Set[Path]:
    return local_pages(site / "index.html", parse(site / "index.html"))


def test_the_tree_has_plugins_and_roles():
    assert len(PLUGINS) >= 20 and len(ROLES) >= 6, (PLUGINS, ROLES)


@pytest.mark.parametrize("name, kind", PLUGINS, ids=["%s_%s" % p for p in PLUGINS])
def test_index_links_every_plugin(site, index, name, kind):
    page = site / REFERENCE / ("%s_%s.html" % (name, kind))
    assert page.resolve() in index
    title = "".join(parse(page).h1)
    assert title.startswith("nanoedge.core.%s %s – " % (name, kind)), title


@pytest.mark.parametrize("role", ROLES)
def test_index_links_every_role_with_its_argument_specs(site, index, role):
    page = site / REFERENCE / ("%s_role.html" % role)
    assert page.resolve() in index
    links = parse(page)
    assert "".join(links.h1).startswith("nanoedge.core.%s role – " % role)
    specs = yaml.safe_load((COLLECTION_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    expected = {"parameter-%s--%s" % (entry, option)
                for entry, spec in specs["argument_specs"].items() for option in spec.get("options") or {}}
    assert expected, role
    assert sorted(expected - links.ids) == []


@pytest.mark.parametrize("guide", GUIDES)
def test_index_links_the_guides(site, index, guide):
    assert (site / guide).resolve() in index


def test_every_page_the_index_names_exists(site, index):
    assert len(index) >= len(PLUGINS) + len(ROLES) + len(GUIDES)
    assert sorted(str(p) for p in index if not p.is_file()) == []


def test_every_local_link_of_every_page_resolves(site):
    broken = {}
    for page in sorted(site.rglob("*.html")):
        missing = sorted(os.path.relpath(p, site) for p in local_pages(page, parse(page)) if not p.exists())
        if missing:
            broken[str(page.relative_to(site))] = missing
    assert broken == {}
