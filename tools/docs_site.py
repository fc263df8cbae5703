"""Build the HTML docs site of nanoedge.core (``make docs``).

    python tools/docs_site.py COLLECTION DEST

COLLECTION is a copy of the collection at .../ansible_collections/nanoedge/core
(``make layout`` writes one); the site shows what ansible-doc reads from it, so
it documents the collection as installed. DEST receives:

    rst/    the Sphinx sources: antsibull-docs' pages of every plugin and role,
            the guides (docs/*.md, read by MyST) and docs/site/index.rst
    html/   the site; html/index.html is its start page

Sphinx runs with -W: any warning fails the build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

COLLECTION = "nanoedge.core"
# The Markdown guides of docs/ that the site carries, under guide/.
GUIDES = ("user-guide.md", "contracts.md", "leadership.md")


def collections_path(collection: Path) -> str:
    """ANSIBLE_COLLECTIONS_PATH with the copy's tree first, so ansible-doc reads that copy."""
    root = collection.resolve().parents[2]
    if collection.resolve().parents[1].name != "ansible_collections":
        raise SystemExit("docs_site: %s is not an ansible_collections/nanoedge/core folder" % collection)
    rest = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    return os.pathsep.join(filter(None, [str(root), rest]))


def run(command: list[str], env: dict[str, str]) -> None:
    print("docs_site: " + " ".join(command), flush=True)
    proc = subprocess.run(command, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit("docs_site: %s failed (exit %d)" % (command[0], proc.returncode))


def tool(name: str) -> str:
    """The tool beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit("docs_site: %s not found; install requirements-dev.txt" % name)
    return found


def fresh_dir(path: Path) -> None:
    # antsibull-docs only writes into a folder that no one else may write to.
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(mode=0o700, parents=True)


def write_sources(collection: Path, rst: Path, env: dict[str, str]) -> None:
    site = collection / "docs" / "site"
    fresh_dir(rst)
    run([tool("antsibull-docs"), "--config-file", str(site / "antsibull-docs.cfg"), "collection",
         "--use-current", "--fail-on-error", "--dest-dir", str(rst), COLLECTION], env)
    shutil.copy2(site / "index.rst", rst / "index.rst")
    (rst / "guide").mkdir()
    for name in GUIDES:
        shutil.copy2(collection / "docs" / name, rst / "guide" / name)


def build(collection: Path, dest: Path) -> Path:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(collection))
    # antsibull-docs runs ansible-doc: the one of this venv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    rst, html = dest / "rst", dest / "html"
    write_sources(collection, rst, env)
    if html.exists():
        shutil.rmtree(html)
    run([tool("sphinx-build"), "-b", "html", "-W", "--keep-going", "-n", "-q", "-E",
         "-c", str(collection / "docs" / "site"), "-d", str(dest / "doctrees"), str(rst), str(html)], env)
    return html / "index.html"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("collection", type=Path, help="the collection copy (.../ansible_collections/nanoedge/core)")
    parser.add_argument("dest", type=Path, help="where rst/ and html/ go (build/docs)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    index = build(args.collection, args.dest)
    pages = len(list(index.parent.rglob("*.html")))
    print("docs_site: %d pages in %s (%.0f s)" % (pages, index.parent, time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
