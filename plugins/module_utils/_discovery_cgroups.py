# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource discovery: the CPU and memory limits of the cgroups that apply to this process (v1 or v2).

Standard library only, Python >= 3.9: this runs on managed nodes.
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._discovery_reader import Reader

# a v1 memory limit this large means "no limit" (the kernel reports
# PAGE_COUNTER_MAX pages in bytes, about 2**63)
_V1_UNLIMITED = 1 << 62


class Cgroups:
    """The cgroup folders that apply to this process, v2 (unified) or v1.

    Every ancestor of the process's cgroup can carry a limit, so each lookup
    walks from the process's own cgroup up to the mount root. Inside a
    container the process's path (from the host's view) often does not exist
    under the container's cgroup mount, whose root is then the container's
    own cgroup.
    """

    MOUNT = "/sys/fs/cgroup"

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.unified = reader.exists(self.MOUNT + "/cgroup.controllers")
        self.paths: t.Dict[str, str] = {}
        text = reader.text("/proc/self/cgroup", required=False)
        for line in (text or "").splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            controllers, path = parts[1], parts[2]
            for controller in controllers.split(",") if controllers else [""]:
                self.paths[controller] = path

    def _folders(self, base: str, path: str) -> t.List[str]:
        folders: t.List[str] = []
        # "/.." shows up for processes outside the reader's cgroup namespace
        parts = [p for p in path.split("/") if p and p not in (".", "..")]
        while parts:
            candidate = "/".join([base] + parts)
            if self.reader.isdir(candidate):
                folders.append(candidate)
            parts.pop()
        folders.append(base)
        return folders

    def v2_folders(self) -> t.List[str]:
        return self._folders(self.MOUNT, self.paths.get("", "/"))

    # a file every mount of the v1 controller has at its top
    _V1_MARKERS = {"cpu": "cpu.cfs_period_us", "memory": "memory.limit_in_bytes"}

    def v1_folders(self, controller: str) -> t.List[str]:
        for mount_name in ("cpu,cpuacct", "cpuacct,cpu", controller) if controller == "cpu" else (controller,):
            base = "%s/%s" % (self.MOUNT, mount_name)
            # systemd leaves an empty cpu,cpuacct folder beside the real mount in
            # some containers: only a folder with the controller's files counts
            if self.reader.exists("%s/%s" % (base, self._V1_MARKERS[controller])):
                return self._folders(base, self.paths.get(controller, "/"))
        return []

    def cpu_limit(self) -> t.Optional[int]:
        """floor(quota / period), at least 1; None without a quota."""
        limits: t.List[int] = []
        if self.unified:
            for folder in self.v2_folders():
                text = self.reader.text(folder + "/cpu.max", required=False)
                if text is None:
                    continue
                fields = text.split()
                if fields and fields[0] == "max":
                    continue
                try:
                    quota, period = int(fields[0]), int(fields[1])
                    if quota <= 0 or period <= 0:
                        raise ValueError
                except (ValueError, IndexError):
                    self.reader.warn("%s/cpu.max: malformed (%r)" % (folder, text[:40]))
                    continue
                limits.append(max(1, quota // period))
        else:
            for folder in self.v1_folders("cpu"):
                quota = self.reader.integer(folder + "/cpu.cfs_quota_us", required=False)
                if quota is None or quota < 0:
                    continue
                period = self.reader.integer(folder + "/cpu.cfs_period_us")
                if not period or period <= 0:
                    continue
                limits.append(max(1, quota // period))
        return min(limits) if limits else None

    def memory_limit(self) -> t.Tuple[t.Optional[int], t.Optional[int]]:
        """(limit, headroom) in bytes: the tightest limit of any level and the
        least headroom of any level; (None, None) without a limit.

        Headroom is a level's limit minus what it uses, not counting inactive
        page cache (the kernel reclaims it before the limit bites), which is
        also how ``docker stats`` reports usage. A parent slice can have less
        headroom than its child even with a higher limit, as its siblings use
        memory too.
        """
        limits: t.List[int] = []
        headrooms: t.List[int] = []
        if self.unified:
            levels = [(f, "memory.max", "memory.current", "inactive_file") for f in self.v2_folders()]
        else:
            levels = [(f, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
                      for f in self.v1_folders("memory")]
        for folder, limit_file, usage_file, inactive_key in levels:
            text = self.reader.text("%s/%s" % (folder, limit_file), required=False)
            if text is None or text == "max":
                continue
            try:
                limit = int(text)
            except ValueError:
                self.reader.warn("%s/%s: malformed (%r)" % (folder, limit_file, text[:40]))
                continue
            if limit < 0:
                self.reader.warn("%s/%s: malformed (negative limit %d)" % (folder, limit_file, limit))
                continue
            if limit >= _V1_UNLIMITED:
                continue
            limits.append(limit)
            usage = self.reader.integer("%s/%s" % (folder, usage_file), required=False)
            if usage is not None:
                headrooms.append(max(0, limit - max(0, usage - self._stat(folder, inactive_key))))
        if not limits:
            return None, None
        return min(limits), (min(headrooms) if headrooms else None)

    def _stat(self, folder: str, key: str) -> int:
        text = self.reader.text(folder + "/memory.stat", required=False) or ""
        for line in text.splitlines():
            name, sep, value = line.partition(" ")
            if sep and name == key:
                try:
                    return int(value)
                except ValueError:
                    break
        return 0
