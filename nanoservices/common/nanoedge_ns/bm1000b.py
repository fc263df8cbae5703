# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The BerryMed BM1000B pulse oximeter's serial protocol (BCI protocol).

The device streams 5-byte packets over its USB-serial cable (115200 8N1):

====  ======================================================================
byte  bits
====  ======================================================================
1     bit 7 = 1 (sync); 0-3 signal strength; 4 no signal; 5 probe unplugged;
      6 pulse beep
2     bit 7 = 0; 0-6 plethysmogram sample
3     bit 7 = 0; 0-3 bar graph; 4 no finger; 5 pulse searching;
      6 bit 7 of the pulse rate
4     bit 7 = 0; 0-6 pulse rate bits 0-6 (255 = invalid)
5     bit 7 = 0; 0-6 SpO2 in % (127 = invalid)
====  ======================================================================

Only byte 1 has bit 7 set, which is what lets a reader find packet
boundaries again after a lost byte. ``synthesize`` builds a realistic stream
(heart beats with sinus arrhythmia, a desaturation episode) for the demo
cluster's fake oximeter; ``python3 -m nanoedge_ns.bm1000b OUT`` writes one.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import stat
import sys
import typing as t

PACKET_SIZE = 5
INVALID_PULSE_RATE = 255
INVALID_SPO2 = 127
DEFAULT_RATE_HZ = 100


class Packet(t.NamedTuple):
    signal_strength: int = 0
    no_signal: bool = False
    probe_unplugged: bool = False
    beep: bool = False
    pleth: int = 0
    bargraph: int = 0
    no_finger: bool = False
    searching: bool = False
    pulse_rate: int = INVALID_PULSE_RATE
    spo2: int = INVALID_SPO2

    @property
    def valid(self) -> bool:
        """A reading a clinician may use: finger in, probe plugged, values present."""
        return not (self.no_finger or self.probe_unplugged or self.no_signal
                    or self.spo2 == INVALID_SPO2 or self.pulse_rate == INVALID_PULSE_RATE)


def encode(packet: Packet) -> bytes:
    """The 5 bytes the device sends for ``packet``."""
    for name, value, limit in (("signal_strength", packet.signal_strength, 15), ("pleth", packet.pleth, 127),
                               ("bargraph", packet.bargraph, 15), ("pulse_rate", packet.pulse_rate, 255),
                               ("spo2", packet.spo2, 127)):
        if not 0 <= value <= limit:
            raise ValueError("bm1000b: %s=%r out of range 0..%d" % (name, value, limit))
    return bytes((
        0x80 | packet.signal_strength | packet.no_signal << 4 | packet.probe_unplugged << 5 | packet.beep << 6,
        packet.pleth,
        packet.bargraph | packet.no_finger << 4 | packet.searching << 5 | (packet.pulse_rate >> 7) << 6,
        packet.pulse_rate & 0x7F,
        packet.spo2,
    ))


def decode(frame: t.Union[bytes, bytearray]) -> Packet:
    """One packet from exactly 5 bytes; ValueError when they are not a packet."""
    if len(frame) != PACKET_SIZE:
        raise ValueError("bm1000b: a packet is %d bytes, got %d" % (PACKET_SIZE, len(frame)))
    if not frame[0] & 0x80 or any(b & 0x80 for b in frame[1:]):
        raise ValueError("bm1000b: bad sync bits in %s" % bytes(frame).hex())
    head, pleth, info, rate_low, spo2 = frame
    return Packet(
        signal_strength=head & 0x0F,
        no_signal=bool(head & 0x10),
        probe_unplugged=bool(head & 0x20),
        beep=bool(head & 0x40),
        pleth=pleth,
        bargraph=info & 0x0F,
        no_finger=bool(info & 0x10),
        searching=bool(info & 0x20),
        pulse_rate=rate_low | ((info >> 6) & 1) << 7,
        spo2=spo2,
    )


class FrameParser:
    """Incremental parser: feed any chunks of the byte stream, get packets.

    Bytes before a sync byte, and packets cut short by a new sync byte
    (a byte lost on the wire), are dropped and counted in ``discarded``.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self.discarded = 0

    def feed(self, data: t.Union[bytes, bytearray]) -> t.List[Packet]:
        packets = []
        for byte in data:
            if byte & 0x80:
                self.discarded += len(self._pending)
                self._pending = bytearray((byte,))
            elif not self._pending:
                self.discarded += 1
            else:
                self._pending.append(byte)
                if len(self._pending) == PACKET_SIZE:
                    packets.append(decode(self._pending))
                    self._pending = bytearray()
        return packets


def spo2_course(second: float, period: float) -> float:
    """The demo patient's SpO2 over one loop of ``period`` seconds:
    normal, then a desaturation to 88 % for a third of the loop, then recovery."""
    phase = (second % period) / period
    if phase < 1 / 3:
        return 97.0
    if phase < 2 / 3:
        return 88.0
    return 95.0


def synthesize(seconds: float, rate_hz: int = DEFAULT_RATE_HZ, seed: int = 7,
               mean_rr_ms: float = 820.0) -> t.Iterator[Packet]:
    """A plausible stream: pulse waves with respiratory sinus arrhythmia
    (RR interval modulated at 0.25 Hz, plus noise), the SpO2 course above."""
    rng = random.Random(seed)
    total = int(seconds * rate_hz)
    next_beat = 0.3
    beat_start = -1.0
    rr = mean_rr_ms / 1000.0
    for index in range(total):
        now = index / rate_hz
        beep = False
        if now >= next_beat:
            beat_start, beep = next_beat, True
            rr = (mean_rr_ms + 45.0 * math.sin(2 * math.pi * 0.25 * now) + rng.gauss(0, 12.0)) / 1000.0
            next_beat += rr
        since = now - beat_start
        # systolic upstroke, then decay with a dicrotic notch
        wave = math.exp(-((since - 0.12) / 0.06) ** 2) + 0.35 * math.exp(-((since - 0.38) / 0.08) ** 2)
        pleth = max(0, min(100, int(18 + 70 * wave + rng.gauss(0, 1.0))))
        spo2 = int(round(spo2_course(now, seconds) + rng.choice((-1, 0, 0, 1)) * 0.6))
        yield Packet(signal_strength=8, beep=beep, pleth=pleth, bargraph=min(15, int(wave * 15)),
                     pulse_rate=int(round(60.0 / rr)), spo2=spo2)


def _configure_serial(fd: int) -> None:
    """115200 baud, 8N1, raw: how the BM1000B's USB-serial cable talks."""
    import termios  # POSIX only; imported here so the parser works anywhere

    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag
    attrs[1] = 0  # oflag
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # cflag
    attrs[3] = 0  # lflag
    attrs[4] = attrs[5] = termios.B115200
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


async def stream_packets(path: str, rate_hz: int = DEFAULT_RATE_HZ, loop: bool = True) -> t.AsyncIterator[Packet]:
    """Packets from the oximeter at ``path``.

    A character device (``/dev/ttyUSB0``) is the real thing, read as it
    comes. A regular file is a recording, replayed at ``rate_hz`` packets per
    second and, with ``loop``, from the start again at its end: that is how
    the demo cluster's fake oximeter works.
    """
    parser = FrameParser()
    running = asyncio.get_running_loop()
    if stat.S_ISCHR(os.stat(path).st_mode):
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        try:
            _configure_serial(fd)
            while True:
                chunk = await running.run_in_executor(None, os.read, fd, 256)
                if not chunk:
                    return
                for packet in parser.feed(chunk):
                    yield packet
        finally:
            os.close(fd)
    tick = 0.1
    chunk_size = max(1, int(rate_hz * tick)) * PACKET_SIZE
    with open(path, "rb") as recording:
        next_tick = running.time()
        while True:
            chunk = recording.read(chunk_size)
            if len(chunk) < chunk_size and loop:
                recording.seek(0)
                chunk += recording.read(chunk_size - len(chunk))
            if not chunk:
                return
            for packet in parser.feed(chunk):
                yield packet
            next_tick += tick
            await asyncio.sleep(max(0.0, next_tick - running.time()))


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write a synthetic BM1000B byte stream.")
    parser.add_argument("output")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE_HZ)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with open(args.output, "wb") as stream:
        stream.write(b"".join(encode(p) for p in synthesize(args.seconds, args.rate, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
