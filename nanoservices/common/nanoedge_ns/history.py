# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A producer's numbered readings, kept on disk, bounded by count and bytes.

Layout of the history directory (one per source)::

    meta.json                  {"source", "epoch"}: written once, temp file + fsync + rename
    seg-<first seq, 20 digits>.log   append-only segments of records

A record is a 16-byte header (payload length, CRC-32 of seq and payload,
seq) and the reading as compact JSON without its ``seq`` and ``source``
(the header and the directory hold them). A crash in the middle of a write
leaves a short or garbled last record: its length or checksum does not
match, so opening the history drops it (and truncates the segment there)
instead of misreading it.

Durability: with ``fsync=True`` (the default) :meth:`History.append`
returns only once the record is on stable storage (``fdatasync``), and a
program publishes a reading only after that, so no reading anyone saw is
lost by a power cut and no number is handed out twice. With
``fsync=False`` a killed process loses nothing either (the kernel holds the
data), but a power cut may lose the last readings and their numbers may be
reused: use it only on tmpfs or for tests.

Bounds: whole segments are dropped, oldest first, while the history holds
more than ``max_count`` readings or ``max_bytes`` bytes; a segment holds at
most an eighth of either bound, so the history keeps at least seven eighths
of them once full. The segment being written is never dropped: the next
number is always known from the disk.
"""

from __future__ import annotations

import array
import binascii
import json
import logging
import os
import secrets
import struct
import typing as t

HEADER = struct.Struct("<IIQ")
SEGMENTS = 8
MAX_RECORD = 1 << 20

log = logging.getLogger("nanoedge_ns.history")


class HistoryError(Exception):
    """The history directory cannot be used (the message names it)."""


class Segment:
    """One segment file; ``offsets`` (where each record starts) lets a page
    read only its own records."""

    __slots__ = ("path", "first", "last", "count", "size", "offsets")

    def __init__(self, path: str, first: int) -> None:
        self.path = path
        self.first = first
        self.last = first - 1
        self.count = 0
        self.size = 0
        self.offsets = array.array("L")

    def add(self, seq: int, length: int) -> None:
        self.offsets.append(self.size)
        self.last, self.count, self.size = seq, self.count + 1, self.size + length


def encode_record(seq: int, payload: bytes) -> bytes:
    seq_bytes = struct.pack("<Q", seq)
    return HEADER.pack(len(payload), binascii.crc32(payload, binascii.crc32(seq_bytes)), seq) + payload


def decode_records(data: bytes) -> t.Tuple[t.List[t.Tuple[int, bytes]], int]:
    """The whole records at the start of ``data`` and where they end; a
    short, oversized or mis-summed record ends them."""
    records: t.List[t.Tuple[int, bytes]] = []
    offset, size = 0, len(data)
    while offset + HEADER.size <= size:
        length, crc, seq = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if length > MAX_RECORD or end > size:
            break
        payload = data[offset + HEADER.size:end]
        if binascii.crc32(payload, binascii.crc32(struct.pack("<Q", seq))) != crc:
            break
        if records and seq != records[-1][0] + 1:
            break
        records.append((seq, payload))
        offset = end
    return records, offset


def write_atomically(path: str, data: bytes, sync: bool = True) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it,
    fsync, rename, fsync of the folder. A crash before the rename leaves the
    old file and a temporary one, which readers ignore."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)
    if sync:
        sync_folder(folder)


def sync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class History:
    """Numbered readings of one source (``service/instance``) in ``directory``.

    ``append(values)`` numbers the reading (1, 2, ... over the life of the
    directory, across restarts), stores it and returns it with ``seq``,
    ``source`` and ``epoch`` set. ``page(since, limit)`` returns the stored
    readings after ``since``. The epoch names this directory's numbering:
    a producer that starts with an empty directory starts a new epoch.
    """

    def __init__(self, directory: str, source: str, max_count: int = 20000, max_bytes: int = 4 << 20,
                 fsync: bool = True) -> None:
        if max_count < 1 or max_bytes < 1024:
            raise HistoryError("history %s: max_count must be >= 1 and max_bytes >= 1024, got %r and %r"
                               % (directory, max_count, max_bytes))
        self.directory = directory
        self.source = source
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._segment_count = max(1, max_count // SEGMENTS)
        self._segment_bytes = max(1024, max_bytes // SEGMENTS)
        self.segments: t.List[Segment] = []
        self.dropped_records = 0
        self._fd: t.Optional[int] = None
        try:
            os.makedirs(directory, exist_ok=True)
            self.epoch = self._load_meta()
            self._load_segments()
        except OSError as exc:
            raise HistoryError("history %s: %s" % (directory, exc)) from exc

    # ------------------------------------------------------------ opening

    def _load_meta(self) -> str:
        path = os.path.join(self.directory, "meta.json")
        try:
            with open(path, "rb") as handle:
                meta = json.loads(handle.read().decode("utf-8"))
            if meta.get("source") != self.source:
                raise HistoryError("history %s: holds source %r, not %r (one directory per source)"
                                   % (self.directory, meta.get("source"), self.source))
            return str(meta["epoch"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # the file is written by rename, so it is whole or absent: garbage here is not ours
            raise HistoryError("history %s: unreadable meta.json (%s)" % (self.directory, exc)) from exc
        if any(name.startswith("seg-") for name in os.listdir(self.directory)):
            raise HistoryError("history %s: segments without meta.json" % self.directory)
        epoch = secrets.token_hex(8)
        write_atomically(path, json.dumps({"source": self.source, "epoch": epoch}).encode(), self.fsync)
        return epoch

    def _load_segments(self) -> None:
        names = sorted(n for n in os.listdir(self.directory) if n.startswith("seg-") and n.endswith(".log"))
        for name in names:
            path = os.path.join(self.directory, name)
            segment = Segment(path, int(name[4:-4]))
            with open(path, "rb") as handle:
                data = handle.read()
            records, end = decode_records(data)
            if records and records[0][0] != segment.first:
                records, end = [], 0
            if end < len(data):
                log.warning("history %s: %s: dropping %d bytes after seq %d (a write cut short by a crash)",
                            self.directory, name, len(data) - end, segment.first + len(records) - 1)
                self.dropped_records += 1
                with open(path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
            for seq, payload in records:
                segment.add(seq, HEADER.size + len(payload))
            if self.segments and segment.first != self.segments[-1].last + 1:
                # a hole (a deleted segment came back, or one was cut short): keep what follows it
                for old in self.segments:
                    os.unlink(old.path)
                self.segments = []
            self.segments.append(segment)
        for name in os.listdir(self.directory):
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(os.path.join(self.directory, name))  # a write cut before its rename

    # ----------------------------------------------------------- reading

    @property
    def last_seq(self) -> int:
        """The newest number handed out (0 before the first reading)."""
        return self.segments[-1].last if self.segments else 0

    @property
    def first_seq(self) -> int:
        """The oldest number still held (``last_seq + 1`` when empty)."""
        for segment in self.segments:
            if segment.count:
                return segment.first
        return self.last_seq + 1

    def __len__(self) -> int:
        return sum(s.count for s in self.segments)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    def records(self, since: int, limit: int) -> t.List[t.Tuple[int, bytes]]:
        """Up to ``limit`` (seq, JSON payload) after ``since``, in order."""
        result: t.List[t.Tuple[int, bytes]] = []
        for segment in self.segments:
            if segment.last <= since or not segment.count:
                continue
            start = max(0, since + 1 - segment.first)
            stop = min(segment.count, start + limit - len(result))
            begin = segment.offsets[start]
            end = segment.offsets[stop] if stop < segment.count else segment.size
            with open(segment.path, "rb") as handle:
                handle.seek(begin)
                data = handle.read(end - begin)
            records = decode_records(data)[0]  # checked again: the disk may rot
            if len(records) < stop - start:
                records = self._readable(segment, data, begin, start, stop)
            result.extend(records)
            if len(result) >= limit:
                break
        return result[:limit]

    def _readable(self, segment: Segment, data: bytes, begin: int, start: int,
                  stop: int) -> t.List[t.Tuple[int, bytes]]:
        """The records of ``data`` one by one, leaving out those that rotted
        on disk since they were written (their consumers count them missing)."""
        records: t.List[t.Tuple[int, bytes]] = []
        for index in range(start, stop):
            low = segment.offsets[index] - begin
            high = (segment.offsets[index + 1] if index + 1 < segment.count else segment.size) - begin
            record = decode_records(data[low:high])[0]
            if record and record[0][0] == segment.first + index:
                records.extend(record)
            else:
                log.error("history %s: seq %d is unreadable on disk", self.directory, segment.first + index)
        return records

    def readings(self, since: int = 0, limit: int = 1000) -> t.List[t.Dict[str, t.Any]]:
        return [dict(json.loads(payload.decode("utf-8")), seq=seq, source=self.source)
                for seq, payload in self.records(since, limit)]

    def page(self, since: int, limit: int, extra: t.Optional[t.Dict[str, t.Any]] = None) -> bytes:
        """The answer of ``GET <resource>/history?since=N``, as JSON bytes:
        ``first``/``last`` held, ``missing`` (readings after ``since`` no
        longer held), ``more`` (another page follows) and ``at_since`` (the
        ``taken_at`` of reading ``since``, when held)."""
        first, last = self.first_seq, self.last_seq
        records: t.List[t.Tuple[int, bytes]] = []
        if since <= last:
            records = self.records(max(0, since - 1), limit + 1)
        anchor = records.pop(0) if records and records[0][0] == since else None
        records = records[:limit]
        missing = max(0, min(first, last + 1) - since - 1) if since < last else 0
        head = {"source": self.source, "epoch": self.epoch, "since": since, "first": first, "last": last,
                "missing": missing, "more": bool(records) and records[-1][0] < last}
        head.update(extra or {})
        if anchor is not None:
            # the reading numbered ``since``: a consumer compares it with the one it processed under that number
            head["at_since"] = json.loads(anchor[1].decode("utf-8")).get("taken_at")
        body = b",".join(b'{"seq":%d,' % seq + payload[1:] if payload != b"{}" else b'{"seq":%d}' % seq
                         for seq, payload in records)
        return json.dumps(head, sort_keys=True, separators=(",", ":")).encode()[:-1] + b',"readings":[' + body + b"]}"

    # ----------------------------------------------------------- writing

    def append(self, values: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        """Number and store one reading; return it with seq, source and epoch."""
        stored = {k: v for k, v in values.items() if k not in ("seq", "source", "epoch")}
        payload = json.dumps(stored, sort_keys=True, separators=(",", ":")).encode()
        if len(payload) > MAX_RECORD:
            raise HistoryError("history %s: a reading of %d bytes (at most %d)" % (self.directory, len(payload),
                                                                                   MAX_RECORD))
        seq = self.last_seq + 1
        segment, fd = self._writable(seq)
        record = encode_record(seq, payload)
        os.write(fd, record)
        if self.fsync:
            _datasync(fd)
        segment.add(seq, len(record))
        self._enforce_bounds()
        return dict(stored, seq=seq, source=self.source, epoch=self.epoch)

    def _writable(self, seq: int) -> t.Tuple[Segment, int]:
        active = self.segments[-1] if self.segments else None
        if active is None or active.count >= self._segment_count or active.size >= self._segment_bytes:
            self.close()
            active = Segment(os.path.join(self.directory, "seg-%020d.log" % seq), seq)
            fd = self._fd = os.open(active.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            if self.fsync:
                sync_folder(self.directory)
            self.segments.append(active)
            return active, fd
        if self._fd is None:
            self._fd = os.open(active.path, os.O_WRONLY | os.O_APPEND)
        return active, self._fd

    def _enforce_bounds(self) -> None:
        count, size = len(self), self.size
        while len(self.segments) > 1 and (count > self.max_count or size > self.max_bytes):
            oldest = self.segments.pop(0)
            count, size = count - oldest.count, size - oldest.size
            os.unlink(oldest.path)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _datasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)
