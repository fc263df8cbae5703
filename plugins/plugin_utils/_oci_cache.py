# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the registry client read about an image, and the cache that keeps it by manifest digest.

A digest names immutable content, so a cached entry never goes stale.
Controller side, standard library only.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import typing as t
from dataclasses import dataclass

# 2: each platform also keeps the ports its config exposes
CACHE_FORMAT = 2


@dataclass(frozen=True)
class PlatformImage:
    """One platform of an image: its manifest and the config that manifest names."""

    platform: str
    manifest_digest: str
    labels: t.Dict[str, str]
    annotations: t.Dict[str, str]
    # the config's ExposedPorts ("5701/udp"), sorted: what an image without a description says of its port
    exposed_ports: t.Tuple[str, ...] = ()

    def to_json(self) -> t.Dict[str, t.Any]:
        return {"platform": self.platform, "manifest_digest": self.manifest_digest,
                "labels": self.labels, "annotations": self.annotations, "exposed_ports": list(self.exposed_ports)}

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> "PlatformImage":
        return cls(platform=str(data["platform"]), manifest_digest=str(data["manifest_digest"]),
                   labels=str_dict(data.get("labels")), annotations=str_dict(data.get("annotations")),
                   exposed_ports=tuple(str(p) for p in data.get("exposed_ports") or ()))


@dataclass(frozen=True)
class ImageContent:
    """Everything read for one manifest digest; valid for as long as the digest is."""

    media_type: str
    annotations: t.Dict[str, str]
    platforms: t.Tuple[PlatformImage, ...]

    def to_json(self) -> t.Dict[str, t.Any]:
        return {"media_type": self.media_type, "annotations": self.annotations,
                "platforms": [p.to_json() for p in self.platforms]}

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> "ImageContent":
        return cls(media_type=str(data["media_type"]), annotations=str_dict(data.get("annotations")),
                   platforms=tuple(PlatformImage.from_json(p) for p in data["platforms"]))


@dataclass(frozen=True)
class ImageMetadata:
    registry: str
    repository: str
    tag: str
    digest: str
    content: ImageContent

    @property
    def reference(self) -> str:
        return "%s/%s:%s" % (self.registry, self.repository, self.tag)

    @property
    def platform_names(self) -> t.List[str]:
        return sorted({p.platform for p in self.content.platforms})


def str_dict(value: t.Any) -> t.Dict[str, str]:
    """Labels and annotations are string maps; anything else in untrusted JSON is dropped."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


# --------------------------------------------------------------------------- cache


class DigestCache:
    """Image content by manifest digest, for a run and optionally on disk.

    A digest names immutable content, so an entry never goes stale; the file
    only grows by what was read and is rewritten atomically.
    """

    def __init__(self, path: t.Optional[str] = None) -> None:
        self.path = path
        self._entries: t.Dict[str, ImageContent] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if path:
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, "rb") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # an unreadable cache costs one cold run, never a failure
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return
        for digest, entry in (data.get("entries") or {}).items():
            try:
                self._entries[digest] = ImageContent.from_json(entry)
            except (KeyError, TypeError, ValueError):
                continue

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str) -> t.Optional[ImageContent]:
        return self._entries.get(digest)

    def put(self, digest: str, content: ImageContent) -> None:
        with self._lock:
            if digest not in self._entries:
                self._entries[digest] = content
                self._dirty = True

    def save(self) -> None:
        if not self.path or not self._dirty:
            return
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with self._lock:
            payload = {"format": CACHE_FORMAT,
                       "entries": {d: c.to_json() for d, c in sorted(self._entries.items())}}
            fd, tmp = tempfile.mkstemp(prefix=".service_profiles-", dir=directory)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(payload, handle, separators=(",", ":"))
                os.replace(tmp, self.path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            self._dirty = False
