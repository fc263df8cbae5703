# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Some folders of an image's file system, unpacked on the controller (controller only).

The bare-metal backend installs a service's program and libraries from its
image. This reads the layers of one platform image through ``RegistryClient``
(every blob checked against its size and digest, and bounded in size) and
applies them in order, keeping only the paths asked for. A layer is
untrusted data: an absolute path or a ``..`` in a name, a link that leaves
the folder and a write through a link are refused, and whiteouts
(``.wh.<name>``, ``.wh..wh..opq``) remove what lower layers put there.

The result is cached in a folder named after the image digest (and the
paths): a digest names immutable content, so a folder, once complete, is
never written again; a layer found to touch none of the paths is remembered
and not downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import typing as t
import zlib

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import RegistryClient
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import ImageError

DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
# A layer may expand to this many times max_bytes before it is taken for a compression bomb.
MAX_EXPANSION = 4
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
LAYER_MODES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "r|gz",
    "application/vnd.oci.image.layer.v1.tar+gzip": "r|gz",
    "application/vnd.oci.image.layer.v1.tar": "r|",
}
_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([a-f0-9]{64,128})$")


class LayerError(ValueError):
    """A layer cannot be unpacked safely; the message names the layer entry."""


def cache_folder(cache_dir: str, digest: str, prefixes: t.Sequence[str], platform: t.Optional[str]) -> str:
    """Where the paths of image ``digest`` are unpacked: one folder per digest, platform and set of paths."""
    match = _DIGEST_RE.fullmatch(digest)
    if not match:
        raise ValueError("%r is not an image digest (algorithm:hex)" % (digest,))
    key = hashlib.sha256(json.dumps([platform or "", sorted(prefixes)]).encode()).hexdigest()[:12]
    return os.path.join(cache_dir, "%s-%s.%s" % (match.group(1), match.group(2), key))


def prefixes_of(paths: t.Sequence[str]) -> t.Tuple[str, ...]:
    """Absolute image paths -> relative, normalised prefixes; refuses '..' and the root itself."""
    result = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/") or ".." in path.split("/"):
            raise ValueError("%r is not an absolute path without '..'" % (path,))
        relative = posixpath.normpath(path).lstrip("/")
        if not relative or relative == ".":
            raise ValueError("the image's root folder cannot be unpacked whole; name folders in it")
        result.append(relative)
    return tuple(sorted(set(result)))


def _within(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _touches(path: str, prefixes: t.Sequence[str]) -> bool:
    """``path`` is in one of the prefixes, or holds one (removing it removes a prefix)."""
    return any(_within(path, p) or _within(p, path) for p in prefixes)


def entry_name(name: str) -> str:
    """A member name -> a normalised relative path; LayerError for absolute paths and '..'."""
    if name.startswith("/"):
        raise LayerError("entry %r is an absolute path" % name)
    if ".." in name.split("/"):
        raise LayerError("entry %r leaves the image ('..')" % name)
    return posixpath.normpath(name)


def _whiteout(name: str) -> t.Optional[t.Tuple[str, bool]]:
    """(the path a whiteout removes, whether it is opaque), or None for an ordinary entry."""
    folder, base = posixpath.split(name)
    if base == OPAQUE:
        return folder or ".", True
    if base.startswith(WHITEOUT):
        return posixpath.join(folder, base[len(WHITEOUT):]), False
    return None


# --------------------------------------------------------------------------- writing inside the folder


class Budget:
    """Bytes still allowed to be written; the whole unpacking shares one."""

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.max_bytes = max_bytes

    def take(self, size: int, name: str) -> None:
        self.left -= size
        if self.left < 0:
            raise LayerError("unpacking %r goes over the limit of %d bytes" % (name, self.max_bytes))


def _remove(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _parent(root: str, name: str) -> str:
    """The path of ``name`` in a real folder, made as needed; never through a link."""
    current = root
    for part in [p for p in posixpath.dirname(name).split("/") if p and p != "."]:
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise LayerError("entry %r passes through the link %r" % (name, os.path.relpath(current, root)))
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(current)  # a folder of this layer replaces a file of a lower one
            os.mkdir(current, 0o755)
    return os.path.join(current, posixpath.basename(name))


def _link_target(name: str, target: str) -> str:
    """A symbolic link's target, relative to its folder, if it stays in the image; else LayerError."""
    # an absolute target means the image's root, which is this folder
    resolved = posixpath.normpath(target.lstrip("/") if target.startswith("/")
                                  else posixpath.join(posixpath.dirname(name), target))
    if not target or resolved == ".." or resolved.startswith("../"):
        raise LayerError("link %r -> %r leaves the folder" % (name, target))
    return posixpath.relpath(resolved, posixpath.dirname(name) or ".")


def _write_file(path: str, source: t.BinaryIO, mode: int, budget: Budget, name: str) -> None:
    _remove(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        for chunk in iter(lambda: source.read(256 * 1024), b""):
            budget.take(len(chunk), name)
            handle.write(chunk)
    # permission bits only (no set-user-ID), always readable and writable by the cache's owner
    os.chmod(path, (mode & 0o777) | 0o600)


def _apply_member(root: str, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, budget: Budget) -> None:
    path = _parent(root, name)
    if member.isdir():
        if os.path.islink(path) or not os.path.isdir(path):
            _remove(path)
            os.mkdir(path, 0o755)
        os.chmod(path, (member.mode & 0o777) | 0o700)
    elif member.isfile():
        source = tar.extractfile(member)
        if source is None:
            raise LayerError("entry %r has no data" % name)
        _write_file(path, t.cast(t.BinaryIO, source), member.mode, budget, name)
    elif member.issym():
        target = _link_target(name, member.linkname)
        _remove(path)
        os.symlink(target, path)
    elif member.islnk():
        # a hard link names another entry of the image: copied, so the folder holds no links to check
        source_path = os.path.join(root, entry_name(member.linkname))
        if os.path.islink(source_path) or not os.path.isfile(source_path):
            raise LayerError("hard link %r -> %r: the target is not a file unpacked here" % (name, member.linkname))
        with open(source_path, "rb") as source:
            _write_file(path, source, os.stat(source_path).st_mode, budget, name)
    # devices and FIFOs are no part of a program or a library: left out


# --------------------------------------------------------------------------- one layer


def _members(tar: tarfile.TarFile, limit: int) -> t.Iterator[tarfile.TarInfo]:
    for member in tar:
        if member.offset_data + max(member.size, 0) > limit:
            raise LayerError("the layer expands to more than %d bytes" % limit)
        yield member


def _replaces_ancestor(name: str, member: tarfile.TarInfo, prefixes: t.Sequence[str]) -> bool:
    """A file or link where a prefix's folder was: what lower layers put under it is gone."""
    return not member.isdir() and any(p.startswith(name + "/") for p in prefixes)


def scan_layer(blob: t.BinaryIO, mode: str, prefixes: t.Sequence[str], limit: int
               ) -> t.Tuple[t.List[t.Tuple[str, bool]], bool]:
    """Pass one: what the layer removes under the prefixes, and whether it touches them at all."""
    blob.seek(0)
    removals: t.List[t.Tuple[str, bool]] = []
    relevant = False
    with tarfile.open(fileobj=blob, mode=mode) as tar:
        for member in _members(tar, limit):
            name = entry_name(member.name)
            removed = _whiteout(name)
            if removed is not None:
                if removed[0] == "." or _touches(removed[0], prefixes):
                    removals.append(removed)
            elif _replaces_ancestor(name, member, prefixes):
                removals.append((name, False))
            elif any(_within(name, p) for p in prefixes):
                relevant = True
    return removals, relevant or bool(removals)


def apply_layer(blob: t.BinaryIO, mode: str, root: str, prefixes: t.Sequence[str], budget: Budget,
                limit: int) -> bool:
    """Apply one layer to ``root``, keeping what lies in ``prefixes``; False when it touches none of them."""
    removals, relevant = scan_layer(blob, mode, prefixes, limit)
    if not relevant:
        return False
    # whiteouts hide what lower layers hold, never what this layer adds: applied before it is unpacked
    for target, opaque in removals:
        path = os.path.join(root, target)
        if opaque and os.path.isdir(path) and not os.path.islink(path):
            for child in os.listdir(path):
                _remove(os.path.join(path, child))
        elif not opaque and target != ".":
            _remove(path)
    blob.seek(0)
    with tarfile.open(fileobj=blob, mode=mode) as tar:
        for member in _members(tar, limit):
            name = entry_name(member.name)
            if name != "." and _whiteout(name) is None and any(_within(name, p) for p in prefixes):
                _apply_member(root, tar, member, name, budget)
    return True


# --------------------------------------------------------------------------- one image


def _layer_mode(descriptor: t.Mapping[str, t.Any]) -> str:
    media_type = descriptor.get("mediaType")
    mode = LAYER_MODES.get(media_type) if isinstance(media_type, str) else None
    if mode is None:
        raise LayerError("layer %s has media type %r; only tar and gzip-compressed tar layers can be read"
                         % (descriptor.get("digest"), media_type))
    return mode


def _apply_layers(client: RegistryClient, repository: str, image: str, layers: t.Sequence[t.Mapping[str, t.Any]],
                  root: str, prefixes: t.Sequence[str], skip_marker: t.Callable[[str], str], max_bytes: int) -> None:
    budget = Budget(max_bytes)
    for descriptor in layers:
        mode = _layer_mode(descriptor)
        digest = str(descriptor.get("digest"))
        marker = skip_marker(digest) if _DIGEST_RE.fullmatch(digest) else ""
        if marker and os.path.exists(marker):
            continue  # read before: this layer holds nothing of these paths
        with tempfile.TemporaryFile(dir=os.path.dirname(root)) as blob:
            client.blob_to_file(repository, descriptor, image, t.cast(t.BinaryIO, blob), max_bytes)
            try:
                touched = apply_layer(t.cast(t.BinaryIO, blob), mode, root, prefixes, budget,
                                      max_bytes * MAX_EXPANSION)
            except (tarfile.TarError, EOFError, zlib.error) as exc:
                raise LayerError("layer %s cannot be read: %s" % (digest, exc)) from exc
            except LayerError as exc:
                raise LayerError("layer %s: %s" % (digest, exc)) from None
        if not touched and marker:
            with open(marker, "w", encoding="utf-8"):
                pass


def unpack(client: RegistryClient, repository: str, digest: str, image: str, paths: t.Sequence[str],
           cache_dir: str, platform: t.Optional[str] = None, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The folder holding ``paths`` of image ``repository@digest`` as the image has them (cached).

    Errors: ImageError (an unsafe or unreadable layer too) and RegistryError, OSError when the cache
    cannot be written."""
    prefixes = prefixes_of(paths)
    final = cache_folder(cache_dir, digest, prefixes, platform)
    if os.path.isdir(final):
        return final
    paths_key = final.rsplit(".", 1)[1]
    markers = os.path.join(cache_dir, "layers")
    os.makedirs(markers, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".unpack-", dir=cache_dir)
    try:
        root = os.path.join(work, "root")
        os.mkdir(root, 0o755)
        manifest = client.platform_manifest(repository, digest, image, platform)[2]
        layers = manifest.get("layers")
        if not isinstance(layers, list) or not all(isinstance(d, dict) for d in layers):
            raise LayerError("the manifest has no list of layers")
        _apply_layers(client, repository, image, layers, root, prefixes,
                      lambda layer: os.path.join(markers, "%s.%s.none" % (layer.replace(":", "-"), paths_key)),
                      max_bytes)
        missing = [p for p in prefixes if not os.path.lexists(os.path.join(root, p))]
        if missing:
            raise LayerError("the image has no %s" % ", ".join("/" + p for p in missing))
        try:
            os.rename(root, final)
        except OSError:
            if not os.path.isdir(final):  # else another run finished the same folder first
                raise
    except LayerError as exc:
        raise ImageError(image, client.host, repository, str(exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
