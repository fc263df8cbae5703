# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OSCORE key material of a cluster, kept on the controller (docs/contracts.md,
"The CoAP API", security).

One master secret per pair (manager, peer), generated the first time the pair
is asked for and kept in ``DIR/<manager>/<peer>.secret`` (folders 0700, files
0600, like a CA folder). From it come the two halves of the pair's security
context, in aiocoap's ``settings.json`` form:

- the server half, on the manager: its registry is sender ``""``, the peer is
  recipient ``id(peer)``;
- the client half, wherever the peer runs: the mirror image.

The id context is the manager's name, so the same peer holds a distinct
context for every manager. ``id(peer)`` is the first 6 bytes of SHA-256 of
the peer's name: stable across runs, so a rotation changes the secret only.

A peer is a node name, optionally followed by ``+tag``: ``w1+controller`` is
the controller reporting for w1 with keys of its own (two holders of one
context would reuse its sequence numbers), and the registry counts it as w1.

Rotation: delete a ``.secret`` file (one pair), a manager's folder or the
whole folder, and provision again: the new secret gives new keys, so the
fresh sequence numbers that come with it never repeat a (key, sequence) pair.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import stat
import typing as t

PEER_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}(\+[a-z0-9][a-z0-9._-]{0,62})?")
MANAGER_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
SECRET_RE = re.compile(r"[0-9a-f]{64}")
REGISTRY_ID = ""


class MaterialError(Exception):
    """The material folder cannot be used; the message names the file at fault."""


def peer_id(peer: str) -> str:
    """The peer's OSCORE id in hex: 6 bytes, under the 7 RFC 8613 allows with an 8-byte nonce."""
    return hashlib.sha256(peer.encode("utf-8")).hexdigest()[:12]


def _private_folder(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise MaterialError("cannot create %s: %s" % (path, exc.strerror or exc)) from None
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise MaterialError("%s is open to others (mode %04o): the key material needs 0700" % (path, mode))


def _read_secret(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            secret = handle.read().strip()
    except (OSError, ValueError) as exc:
        raise MaterialError("cannot read %s: %s" % (path, exc)) from None
    if not SECRET_RE.fullmatch(secret):
        raise MaterialError("%s does not hold a 32-byte secret in hex; delete it to rotate the pair's keys" % path)
    return secret


def pair_secret(directory: str, manager: str, peer: str) -> str:
    """The pair's master secret in hex, generated on first use (never overwritten: O_EXCL)."""
    folder = os.path.join(directory, manager)
    _private_folder(directory)
    _private_folder(folder)
    path = os.path.join(folder, peer + ".secret")
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise MaterialError("cannot create %s: %s" % (path, exc.strerror)) from None
        # there already, or another process of the same run made it a moment ago
        return _read_secret(path)
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    return _read_secret(path)


def _settings(sender: str, recipient: str, secret: str, manager: str) -> t.Dict[str, str]:
    return {"sender-id_hex": sender, "recipient-id_hex": recipient, "secret_hex": secret,
            "salt_hex": "", "id-context_ascii": manager}


def pair_material(directory: str, manager: str, peer: str) -> t.Dict[str, t.Any]:
    """Both halves of the pair's context: ``server`` for the manager, ``client`` for the peer."""
    if not isinstance(manager, str) or not MANAGER_RE.fullmatch(manager):
        raise MaterialError("manager %r: must be a node name (%s)" % (manager, MANAGER_RE.pattern))
    if not isinstance(peer, str) or not PEER_RE.fullmatch(peer):
        raise MaterialError("peer %r: must be a node name, optionally +tag (%s)" % (peer, PEER_RE.pattern))
    if not isinstance(directory, str) or not os.path.isabs(directory):
        raise MaterialError("directory %r: must be an absolute path" % (directory,))
    secret = pair_secret(directory, manager, peer)
    ident = peer_id(peer)
    return {
        "manager": manager, "name": peer, "id": ident,
        "server": _settings(REGISTRY_ID, ident, secret, manager),
        "client": _settings(ident, REGISTRY_ID, secret, manager),
    }
