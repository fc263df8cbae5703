# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A folder of OSCORE security contexts on a node, brought to what the controller wants in one pass.

Every end of a pair the roles provision (the registry's side of each peer, the agent's and the
reconcile service's side of each registry, the controller's own) is a folder in aiocoap's
file-based format: ``settings.json`` (the key material) and, written by aiocoap beside it,
``sequence.json`` (the sender sequence number and the replay window). Credentials files
(aiocoap's format: which context protects which URI) name those folders. docs/contracts.md,
"The CoAP API", security.

The rules this module keeps, whoever calls it:

- a context is compared by its *content* (the parsed JSON), never its bytes, so reformatting
  changes nothing and never resets a sequence;
- new key material gets a fresh sequence: ``sequence.json`` goes when ``settings.json`` changes,
  so a (key, sequence number) pair is never used twice;
- every file is replaced whole (``_atomic``), folders are 0700 and files 0600;
- with ``prune``, anything under the folder that is not a listed context or credentials file goes
  (a peer no longer listed is revoked). A context folder's own files are never touched.

Standard library only; runs on managed nodes (Python >= 3.9).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import typing as t

from ._atomic import write_atomically

SETTINGS_FILE = "settings.json"
SEQUENCE_FILE = "sequence.json"
FOLDER_MODE = 0o700
FILE_MODE = 0o600
# A context's folder is a name, optionally under one more name (identity/manager): deeper is a mistake.
MAX_DEPTH = 2


class StoreError(Exception):
    """The wanted contexts or the folder cannot be used; the message names the entry at fault."""


def _relative(value: t.Any, what: str) -> str:
    if not isinstance(value, str) or not value or value.startswith("/"):
        raise StoreError("%s: must be a relative path, got %r" % (what, value))
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise StoreError("%s: %r must not contain empty, '.' or '..' parts" % (what, value))
    return value


def check(contexts: t.Any, credentials: t.Any) -> t.Tuple[t.Dict[str, t.Dict[str, t.Any]], t.Dict[str, t.Any]]:
    """The wanted contexts (relative folder -> settings) and credentials (relative file -> content), checked."""
    wanted: t.Dict[str, t.Dict[str, t.Any]] = {}
    for index, entry in enumerate(contexts or []):
        what = "contexts[%d]" % index
        if not isinstance(entry, dict) or set(entry) != {"path", "settings"}:
            raise StoreError("%s: must be a dict with exactly path and settings" % what)
        path = _relative(entry["path"], what + ".path")
        if path.count("/") >= MAX_DEPTH:
            raise StoreError("%s.path: %r is deeper than %d folders" % (what, path, MAX_DEPTH))
        if not isinstance(entry["settings"], dict) or not entry["settings"]:
            raise StoreError("%s.settings: must be a non-empty dict (aiocoap's settings.json)" % what)
        if path in wanted:
            raise StoreError("%s.path: %r is listed twice" % (what, path))
        wanted[path] = entry["settings"]
    files: t.Dict[str, t.Any] = {}
    for index, entry in enumerate(credentials or []):
        what = "credentials[%d]" % index
        if not isinstance(entry, dict) or set(entry) != {"path", "content"}:
            raise StoreError("%s: must be a dict with exactly path and content" % what)
        path = _relative(entry["path"], what + ".path")
        if path in files or path in wanted:
            raise StoreError("%s.path: %r is listed twice" % (what, path))
        files[path] = entry["content"]
    for path in files:
        for folder in wanted:
            if path.startswith(folder + "/"):
                raise StoreError("credentials %r: lies inside the context folder %r" % (path, folder))
    return wanted, files


def _id(name: t.Optional[str], lookup: t.Callable[[str], t.Any], default: int, what: str, check_mode: bool) -> int:
    try:
        return int(lookup(name)[2]) if name else default
    except KeyError:
        if not check_mode:
            raise StoreError("%s %r: no such %s" % (what, name, "user" if what == "owner" else "group")) from None
        return -1


def _owner(owner: t.Optional[str], group: t.Optional[str], check_mode: bool = False) -> t.Tuple[int, int]:
    """The ids to own everything; in check mode a user or group the play has not created yet (it would in a
    real run) is -1, which no file has, so everything shows as to be changed."""
    return (_id(owner, pwd.getpwnam, os.geteuid(), "owner", check_mode),
            _id(group, grp.getgrnam, os.getegid(), "group", check_mode))


def _read_json(path: str) -> t.Any:
    """The file's parsed content; None when missing or not JSON (then it is rewritten)."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _lstat(path: str) -> t.Optional[os.stat_result]:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


class Plan:
    """What must change under ``root`` (computed without writing anything)."""

    def __init__(self) -> None:
        self.folders: t.List[str] = []         # folders to create, or whose mode/owner is off
        self.written: t.List[str] = []         # contexts whose settings.json is missing or has other content
        self.reset: t.List[str] = []           # of those, the ones that had a sequence.json (fresh sequence)
        self.credentials: t.List[str] = []     # credentials files missing or with other content
        self.files_fixed: t.List[str] = []     # files whose content is right but mode/owner is off
        self.removed: t.List[str] = []         # entries pruned

    @property
    def changed(self) -> bool:
        return bool(self.folders or self.written or self.credentials or self.files_fixed or self.removed)

    def diff(self) -> str:
        lines = ["remove %s" % p for p in self.removed]
        lines += ["write %s/%s%s" % (p, SETTINGS_FILE, " (new key material: fresh sequence)" if p in self.reset else "")
                  for p in self.written]
        lines += ["write %s" % p for p in self.credentials]
        lines += ["fix the mode or owner of %s" % p for p in self.folders + self.files_fixed]
        return "".join(line + "\n" for line in lines)


def _off(info: t.Optional[os.stat_result], mode: int, uid: int, gid: int) -> bool:
    return info is None or stat.S_IMODE(info.st_mode) != mode or info.st_uid != uid or info.st_gid != gid


def _folders_of(wanted: t.Iterable[str], files: t.Iterable[str]) -> t.List[str]:
    """Every folder the contexts and credentials need, parents first ("." is the root)."""
    needed = {"."}
    for path in list(wanted) + [os.path.dirname(p) for p in files]:
        parts = path.split("/") if path else []
        for depth in range(1, len(parts) + 1):
            needed.add("/".join(parts[:depth]))
    return sorted(needed, key=lambda p: (p != ".", p.count("/"), p))


def plan(root: str, wanted: t.Mapping[str, t.Mapping[str, t.Any]], files: t.Mapping[str, t.Any],
         uid: int, gid: int, prune: bool) -> Plan:
    """Compare ``root`` with what is wanted; refuses links where folders or files must be."""
    if not os.path.isabs(root):
        raise StoreError("path %r: must be absolute" % root)
    result = Plan()
    for folder in _folders_of(wanted, files):
        path = os.path.normpath(os.path.join(root, folder))
        info = _lstat(path)
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise StoreError("%s: must be a folder, not %s" % (path, "a link" if stat.S_ISLNK(info.st_mode) else "a file"))
        if _off(info, FOLDER_MODE, uid, gid):
            result.folders.append(folder)
    for folder, settings in sorted(wanted.items()):
        _plan_file(result, os.path.join(root, folder, SETTINGS_FILE), settings, uid, gid, folder, context=True)
    for name, content in sorted(files.items()):
        _plan_file(result, os.path.join(root, name), content, uid, gid, name, context=False)
    if prune:
        result.removed = _unlisted(root, "", wanted, set(files))
    return result


def _plan_file(result: Plan, path: str, content: t.Any, uid: int, gid: int, name: str, context: bool) -> None:
    info = _lstat(path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise StoreError("%s: must be a file, not %s" % (path, "a link" if stat.S_ISLNK(info.st_mode) else "a folder"))
    if info is None or _read_json(path) != content:
        if context:
            result.written.append(name)
            if info is not None and _lstat(os.path.join(os.path.dirname(path), SEQUENCE_FILE)) is not None:
                result.reset.append(name)
        else:
            result.credentials.append(name)
    elif _off(info, FILE_MODE, uid, gid):
        result.files_fixed.append(name)


def _unlisted(root: str, prefix: str, wanted: t.Mapping[str, t.Any], files: t.AbstractSet[str]) -> t.List[str]:
    folder = os.path.join(root, prefix) if prefix else root
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return []
    removed: t.List[str] = []
    for name in names:
        rel = prefix + name
        if rel in wanted or rel in files:
            continue
        inside = [p for p in list(wanted) + list(files) if p.startswith(rel + "/")]
        info = os.lstat(os.path.join(root, rel))
        if inside and stat.S_ISDIR(info.st_mode):
            removed += _unlisted(root, rel + "/", wanted, files)
        else:
            removed.append(rel)
    return removed


def _text(content: t.Any) -> str:
    return json.dumps(content, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def apply(root: str, wanted: t.Mapping[str, t.Mapping[str, t.Any]], files: t.Mapping[str, t.Any],
          uid: int, gid: int, result: Plan) -> None:
    """Make the changes ``result`` lists: folders first, then removals, then each file replaced whole.

    A context's new settings.json is in place before its old sequence.json goes: a crash between the
    two leaves new keys with an old sequence number, which only skips numbers ahead (never reuses one)."""
    for folder in result.folders:
        path = os.path.normpath(os.path.join(root, folder))
        if _lstat(path) is None:
            os.makedirs(path, mode=FOLDER_MODE, exist_ok=True)
        os.chown(path, uid, gid)
        os.chmod(path, FOLDER_MODE)
    for rel in result.removed:
        path = os.path.join(root, rel)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    for folder in result.written:
        path = os.path.join(root, folder, SETTINGS_FILE)
        write_atomically(path, _text(wanted[folder]), mode=FILE_MODE)
        os.chown(path, uid, gid)
        if folder in result.reset:
            try:
                os.unlink(os.path.join(root, folder, SEQUENCE_FILE))
            except FileNotFoundError:
                pass
    for name in result.credentials:
        path = os.path.join(root, name)
        write_atomically(path, _text(files[name]), mode=FILE_MODE)
        os.chown(path, uid, gid)
    for name in result.files_fixed:
        path = os.path.join(root, name if name in files else os.path.join(name, SETTINGS_FILE))
        os.chown(path, uid, gid)
        os.chmod(path, FILE_MODE)


def sync(root: str, contexts: t.Any, credentials: t.Any = None, owner: t.Optional[str] = None,
         group: t.Optional[str] = None, prune: bool = False, check_mode: bool = False) -> Plan:
    """Bring ``root`` to the wanted contexts and credentials; in check mode only say what would change."""
    wanted, files = check(contexts, credentials)
    uid, gid = _owner(owner, group, check_mode)
    result = plan(root, wanted, files, uid, gid, prune)
    if not check_mode and result.changed:
        apply(root, wanted, files, uid, gid, result)
    return result
