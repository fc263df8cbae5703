# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which images to read: repository names and globs, tag policies, bounded concurrency.

Controller side, standard library only; the registry is read through
``RegistryClient`` (``_oci.py``).
"""

from __future__ import annotations

import re
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import RegistryClient
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import ImageError

_REPOSITORY_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_SEMVER_RE = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def glob_to_regex(pattern: str) -> t.Pattern[str]:
    """``*`` and ``?`` stay within one path component, ``**`` crosses ``/``."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[%s]" % body.replace("\\", "\\\\"))
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("^%s$" % "".join(out))


def split_reference(entry: str) -> t.Tuple[str, t.Optional[str]]:
    """``nanoedge/spo2:1.0`` -> (``nanoedge/spo2``, ``1.0``); a tag after the last ``/`` only."""
    name, sep, tag = entry.rpartition(":")
    if sep and "/" not in tag and name:
        return name, tag
    return entry, None


def validate_repository(name: str) -> None:
    if not _REPOSITORY_RE.fullmatch(name) or len(name) > 255:
        raise ValueError("%r is not a valid repository name" % name)


def validate_tag(tag: str) -> None:
    if not _TAG_RE.fullmatch(tag):
        raise ValueError("%r is not a valid tag" % tag)


def semver_key(tag: str) -> t.Optional[t.Tuple[t.Any, ...]]:
    """Sort key for semantic versions (``1.2.3``, ``v1.2.3-rc.1``); None for other tags."""
    match = _SEMVER_RE.fullmatch(tag)
    if not match:
        return None
    core = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    pre = match.group(4)
    if pre is None:
        return core + (1, ())  # a release sorts after all its pre-releases
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return core + (0, idents)


def highest_semver(tags: t.Iterable[str], include_prerelease: bool = False) -> t.Optional[str]:
    best: t.Optional[t.Tuple[t.Tuple[t.Any, ...], str]] = None
    for tag in tags:
        key = semver_key(tag)
        if key is None or (key[3] == 0 and not include_prerelease):
            continue
        # "v1.2.3" and "1.2.3" are the same version: prefer the plain one, deterministically
        candidate = (key + (not tag.startswith("v"),), tag)
        if best is None or candidate[0] > best[0]:
            best = candidate
    return best[1] if best else None


T = t.TypeVar("T")
R = t.TypeVar("R")


def run_bounded(func: t.Callable[[T], R], items: t.Sequence[T], concurrency: int
                ) -> t.List[t.Union[R, BaseException]]:
    """``func`` over ``items`` with at most ``concurrency`` in flight; results (or exceptions) in order."""
    def guarded(item: T) -> t.Union[R, BaseException]:
        try:
            return func(item)
        except Exception as exc:  # collected and reported per item by the caller
            return exc

    if concurrency <= 1 or len(items) <= 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items)),
                            thread_name_prefix="nanoedge-oci") as pool:
        return list(pool.map(guarded, items))


@dataclass
class Selection:
    """What to read: repositories (names or globs, optionally ``:tag``) and the tag policy."""

    repositories: t.List[str] = field(default_factory=list)
    tag_policy: str = "latest"  # latest | fixed | semver
    tag: str = "latest"
    include_prerelease: bool = False
    catalog_page_size: int = 100


def resolve_repositories(client: RegistryClient, selection: Selection) -> t.List[t.Tuple[str, t.Optional[str]]]:
    """(repository, pinned tag or None), sorted; the catalog is read only when a glob asks for it."""
    entries = [split_reference(e.strip()) for e in selection.repositories if e.strip()]
    if not entries:
        entries = [("**", None)]
    catalog: t.Optional[t.List[str]] = None
    chosen: t.Dict[str, t.Optional[str]] = {}
    for pattern, tag in entries:
        if tag is not None:
            validate_tag(tag)
        if is_glob(pattern):
            if catalog is None:
                catalog = client.catalog(selection.catalog_page_size)
            regex = glob_to_regex(pattern)
            for name in catalog:
                if regex.fullmatch(name):
                    chosen[name] = tag if tag is not None else chosen.get(name)
        else:
            validate_repository(pattern)
            chosen[pattern] = tag
    return sorted(chosen.items())


def pick_tag(client: RegistryClient, repository: str, pinned: t.Optional[str], selection: Selection) -> str:
    if pinned:
        return pinned
    if selection.tag_policy == "fixed":
        return selection.tag
    if selection.tag_policy == "semver":
        image = "%s/%s" % (client.host, repository)
        tags = client.tags(repository, image)
        best = highest_semver(tags, selection.include_prerelease)
        if best is None:
            raise ImageError(image, client.host, repository, "no semantic-version tag among %d tag(s)%s"
                             % (len(tags), " (%s)" % ", ".join(sorted(tags)[:10]) if tags else ""))
        return best
    return "latest"
