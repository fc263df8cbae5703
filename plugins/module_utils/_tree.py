# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A folder kept equal to a folder on the controller (nanoedge.core.sync_tree).

The controller describes its folder as a manifest: one entry per folder and per
file, with the file's mode, size and SHA-256. The node compares the manifest
with what its folder holds, in one module run; only when they differ does the
controller send the files, as one tar archive. The node then builds the whole
new folder beside the old one, checks every file against the manifest, and
swaps the two with renames, so the folder is never half-written and files the
controller no longer has are gone.

Standard library only: the same code runs on the controller and on the nodes.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import typing as t
import zlib

CHUNK = 1 << 16


class TreeError(Exception):
    """The folder, the manifest or the archive is not what it must be; the message names it."""


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_mode(value: t.Any, what: str) -> t.Optional[int]:
    """A mode as Ansible users write it: "0644", "644", 0o644 (YAML's 0644), or None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TreeError("%s must be an octal mode such as '0644', got %r" % (what, value))
    if isinstance(value, int):
        mode = value
    else:
        try:
            mode = int(str(value), 8)
        except ValueError:
            raise TreeError("%s must be an octal mode such as '0644', got %r" % (what, value)) from None
    if not 0 <= mode <= 0o7777:
        raise TreeError("%s must be an octal mode such as '0644', got %r" % (what, value))
    return mode


def _relative(path: str, what: str) -> str:
    norm = os.path.normpath(path)
    if not path or os.path.isabs(path) or norm == "." or norm.split(os.sep)[0] == "..":
        raise TreeError("%s %r is not a path inside the folder" % (what, path))
    return norm


def _excluded(rel: str, patterns: t.Sequence[str]) -> bool:
    name = os.path.basename(rel)
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def _file_entry(path: str, rel: str, mode: t.Optional[int]) -> t.Dict[str, t.Any]:
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise TreeError("%s is neither a file nor a folder" % path)
    return {"path": rel, "type": "file", "mode": stat.S_IMODE(info.st_mode) & 0o777 if mode is None else mode,
            "size": info.st_size, "sha256": file_sha256(path)}


def build_manifest(root: str, files: t.Optional[t.Sequence[str]] = None, exclude: t.Sequence[str] = (),
                   mode: t.Optional[int] = None) -> t.List[t.Dict[str, t.Any]]:
    """The manifest of the folder ``root``: every folder and file under it (or only ``files``,
    paths relative to it), minus what matches an ``exclude`` pattern (on the name or the relative
    path). Files get their own permission bits, or ``mode``. Symbolic links to files are followed;
    a link to a folder, or anything else, is refused by name."""
    if not os.path.isdir(root):
        raise TreeError("src %s is not a folder" % root)
    entries: t.Dict[str, t.Dict[str, t.Any]] = {}

    def add_parents(rel: str) -> None:
        parent = os.path.dirname(rel)
        while parent:
            entries.setdefault(parent, {"path": parent, "type": "dir"})
            parent = os.path.dirname(parent)

    if files is not None:
        for name in files:
            rel = _relative(str(name), "files entry")
            path = os.path.join(root, rel)
            if not os.path.isfile(path):
                raise TreeError("files entry %r: %s is not a file" % (name, path))
            entries[rel] = _file_entry(path, rel, mode)
            add_parents(rel)
    else:
        for folder, dirs, names in os.walk(root):
            base = os.path.relpath(folder, root)
            base = "" if base == "." else base
            for name in sorted(dirs):
                rel = os.path.join(base, name)
                if _excluded(rel, exclude):
                    dirs.remove(name)
                elif os.path.islink(os.path.join(folder, name)):
                    raise TreeError("%s is a link to a folder; only files may be links"
                                    % os.path.join(folder, name))
                else:
                    entries[rel] = {"path": rel, "type": "dir"}
            for name in names:
                rel = os.path.join(base, name)
                if not _excluded(rel, exclude):
                    entries[rel] = _file_entry(os.path.join(folder, name), rel, mode)
    return [entries[k] for k in sorted(entries)]


def check_manifest(manifest: t.Any) -> t.Dict[str, t.Dict[str, t.Any]]:
    """The manifest as a map by path, after checking every entry; the error names the bad entry."""
    if not isinstance(manifest, list):
        raise TreeError("the manifest must be a list, got %s" % type(manifest).__name__)
    by_path: t.Dict[str, t.Dict[str, t.Any]] = {}
    for index, entry in enumerate(manifest):
        if not isinstance(entry, dict) or entry.get("type") not in ("file", "dir"):
            raise TreeError("manifest entry %d is not a file or folder entry: %r" % (index, entry))
        rel = _relative(str(entry.get("path", "")), "manifest entry %d: path" % index)
        if rel in by_path:
            raise TreeError("manifest entry %d: %s is listed twice" % (index, rel))
        if entry["type"] == "file":
            mode, size, digest = entry.get("mode"), entry.get("size"), entry.get("sha256")
            if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777 \
                    or not isinstance(size, int) or isinstance(size, bool) or size < 0 \
                    or not isinstance(digest, str) or len(digest) != 64:
                raise TreeError("manifest entry %d (%s) needs a mode, a size and a SHA-256" % (index, rel))
        by_path[rel] = dict(entry, path=rel)
    for rel in by_path:
        parent = os.path.dirname(rel)
        if parent and by_path.get(parent, {}).get("type") != "dir":
            raise TreeError("manifest entry %s: its folder %s is not in the manifest" % (rel, parent))
    return by_path


def differences(dest: str, manifest: t.Any, directory_mode: int, uid: t.Optional[int] = None,
                gid: t.Optional[int] = None, ignore: t.Sequence[str] = ()) -> t.Dict[str, t.List[str]]:
    """What ``dest`` lacks (``added``), has too much (``removed``) and holds otherwise
    (``changed``: content, mode or owner) against the manifest. "." is the folder itself.
    Paths that match an ``ignore`` pattern and are not in the manifest (a byte-code cache
    written on the node) are not compared."""
    wanted = check_manifest(manifest)
    dest = os.path.normpath(dest)
    result: t.Dict[str, t.List[str]] = {"added": [], "removed": [], "changed": []}
    if not os.path.lexists(dest):
        result["added"] = ["."] + sorted(wanted)
        return result
    if os.path.islink(dest) or not os.path.isdir(dest):
        raise TreeError("dest %s exists and is not a folder" % dest)

    def owned(info: os.stat_result) -> bool:
        return (uid is None or info.st_uid == uid) and (gid is None or info.st_gid == gid)

    info = os.lstat(dest)
    if stat.S_IMODE(info.st_mode) != directory_mode or not owned(info):
        result["changed"].append(".")
    seen = set()
    for folder, dirs, names in os.walk(dest):
        base = os.path.relpath(folder, dest)
        base = "" if base == "." else base
        for name in sorted(dirs) + sorted(names):
            rel = os.path.join(base, name)
            path = os.path.join(folder, name)
            entry = wanted.get(rel)
            if entry is None and _excluded(rel, ignore):
                continue
            seen.add(rel)
            info = os.lstat(path)
            if entry is None:
                result["removed"].append(rel)
            elif entry["type"] == "dir":
                if not stat.S_ISDIR(info.st_mode) or stat.S_IMODE(info.st_mode) != directory_mode or not owned(info):
                    result["changed"].append(rel)
            elif not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != entry["mode"] or not owned(info) \
                    or info.st_size != entry["size"] or file_sha256(path) != entry["sha256"]:
                result["changed"].append(rel)
        # a folder that should be a file, or is not wanted, is reported once, not walked into
        dirs[:] = [d for d in dirs if wanted.get(os.path.join(base, d), {}).get("type") == "dir"]
    result["added"] = sorted(set(wanted) - seen)
    result["removed"].sort()
    result["changed"].sort()
    return result


def pack(root: str, manifest: t.Sequence[t.Dict[str, t.Any]], archive: str) -> None:
    """Write the manifest's files and folders from ``root`` into a gzip'd tar at ``archive``."""
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for entry in manifest:
            member = tarfile.TarInfo(entry["path"])
            member.mtime = 0
            if entry["type"] == "dir":
                member.type, member.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(member)
                continue
            path = os.path.join(root, entry["path"])
            member.size, member.mode = os.stat(path).st_size, entry["mode"]
            with open(path, "rb") as handle:
                tar.addfile(member, handle)


def _copy_checked(source: t.IO[bytes], path: str, entry: t.Dict[str, t.Any]) -> None:
    digest, size = hashlib.sha256(), 0
    with open(path, "xb") as out:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        raise TreeError("archive entry %s does not match the manifest (size %d, SHA-256 %s)"
                        % (entry["path"], size, digest.hexdigest()))


def _exchange(first: str, second: str) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the C
    library or the file system cannot, and the caller falls back to two renames."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(error, os.strerror(error), second)


def _remove_leftovers(parent: str, name: str) -> None:
    """Folders a killed run left beside dest (it owns dest, so no other run builds there)."""
    for entry in os.listdir(parent):
        if entry.startswith((".%s.new-" % name, ".%s.old-" % name)) and os.path.isdir(os.path.join(parent, entry)) \
                and not os.path.islink(os.path.join(parent, entry)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _unpack(archive: str, build: str, wanted: t.Dict[str, t.Dict[str, t.Any]]) -> None:
    written = set()
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                rel = _relative(member.name, "archive entry")
                entry = wanted.get(rel)
                kind = "dir" if member.isdir() else "file" if member.isfile() else "other"
                if entry is None or entry["type"] != kind or rel in written:
                    raise TreeError("archive entry %s is not in the manifest as a %s" % (member.name, kind))
                path = os.path.join(build, rel)
                if kind == "dir":
                    os.makedirs(path, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:
                        raise TreeError("archive entry %s cannot be read" % member.name)
                    _copy_checked(source, path, entry)
                written.add(rel)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise TreeError("archive %s cannot be read: %s" % (archive, exc)) from None
    missing = sorted(set(wanted) - written)
    if missing:
        raise TreeError("archive %s lacks %s" % (archive, ", ".join(missing)))


def replace(dest: str, archive: str, manifest: t.Any, directory_mode: int, uid: t.Optional[int] = None,
            gid: t.Optional[int] = None) -> None:
    """Make ``dest`` hold exactly the manifest, from ``archive``: the new folder is built and
    checked beside ``dest`` (so its parent must be writable) and then swapped in, in one step
    where the kernel can; on any error ``dest`` is left as it was."""
    wanted = check_manifest(manifest)
    dest = os.path.normpath(dest)
    if os.path.lexists(dest) and (os.path.islink(dest) or not os.path.isdir(dest)):
        raise TreeError("dest %s exists and is not a folder" % dest)
    parent = os.path.dirname(dest) or "."
    name = os.path.basename(dest)
    try:
        os.makedirs(parent, exist_ok=True)
        _remove_leftovers(parent, name)
        build = tempfile.mkdtemp(prefix=".%s.new-" % name, dir=parent)
    except OSError as exc:
        raise TreeError("cannot build the new %s beside it in %s: %s" % (dest, parent, exc.strerror or exc)) from None
    old = None
    try:
        _unpack(archive, build, wanted)
        # owner first: chown clears the set-user-ID and set-group-ID bits a mode may have
        for rel in sorted(wanted, reverse=True) + [""]:
            path = os.path.join(build, rel) if rel else build
            if uid is not None or gid is not None:
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
            os.chmod(path, directory_mode if not rel or wanted[rel]["type"] == "dir" else wanted[rel]["mode"])
        if os.path.isdir(dest) and _exchange(build, dest):
            # build now holds the old folder
            shutil.rmtree(build, ignore_errors=True)
            return
        if os.path.isdir(dest):
            old = tempfile.mkdtemp(prefix=".%s.old-" % name, dir=parent)
            os.rename(dest, os.path.join(old, name))
        os.rename(build, dest)
    except OSError as exc:
        _undo(dest, build, old, name)
        raise TreeError("cannot build the new %s beside it in %s: %s" % (dest, parent, exc)) from None
    except BaseException:
        _undo(dest, build, old, name)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _undo(dest: str, build: str, old: t.Optional[str], name: str) -> None:
    if old is not None and not os.path.lexists(dest):
        os.rename(os.path.join(old, name), dest)
    shutil.rmtree(build, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
