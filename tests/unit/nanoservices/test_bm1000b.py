# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import asyncio

import pytest

from nanoedge_ns import bm1000b
from nanoedge_ns.bm1000b import Packet


@pytest.mark.parametrize("packet, frame", [
    (Packet(signal_strength=8, pleth=50, bargraph=7, pulse_rate=72, spo2=97), "8832074861"),
    # a pulse rate above 127 keeps its 8th bit in byte 3, bit 6
    (Packet(signal_strength=3, beep=True, pleth=0, bargraph=0, pulse_rate=180, spo2=99), "c300403463"),
    (Packet(no_finger=True, searching=True), "8000707f7f"),  # 255 = invalid pulse rate
    (Packet(probe_unplugged=True, no_signal=True, pleth=127, bargraph=15, pulse_rate=0, spo2=0), "b07f0f0000"),
])
def test_encode_decode_roundtrip(packet, frame):
    assert bm1000b.encode(packet).hex() == frame
    assert bm1000b.decode(bytes.fromhex(frame)) == packet


@pytest.mark.parametrize("packet, valid", [
    (Packet(pulse_rate=72, spo2=97), True),
    (Packet(pulse_rate=72, spo2=97, no_finger=True), False),
    (Packet(pulse_rate=72, spo2=97, probe_unplugged=True), False),
    (Packet(pulse_rate=72, spo2=97, no_signal=True), False),
    (Packet(pulse_rate=255, spo2=97), False),
    (Packet(pulse_rate=72, spo2=127), False),
])
def test_valid(packet, valid):
    assert packet.valid is valid


@pytest.mark.parametrize("frame, message", [
    ("88320748", "bm1000b: a packet is 5 bytes, got 4"),
    ("0832074861", "bm1000b: bad sync bits in 0832074861"),
    ("88b2074861", "bm1000b: bad sync bits in 88b2074861"),
])
def test_decode_rejects(frame, message):
    with pytest.raises(ValueError) as error:
        bm1000b.decode(bytes.fromhex(frame))
    assert str(error.value) == message


def test_encode_rejects_out_of_range():
    with pytest.raises(ValueError) as error:
        bm1000b.encode(Packet(spo2=128))
    assert str(error.value) == "bm1000b: spo2=128 out of range 0..127"


def test_parser_resynchronises_after_a_lost_byte():
    packets = [Packet(pleth=i, pulse_rate=70 + i, spo2=95) for i in range(4)]
    stream = bytearray(b"".join(bm1000b.encode(p) for p in packets))
    del stream[7]  # a byte of the second packet never arrived
    parser = bm1000b.FrameParser()
    assert parser.feed(b"\x12\x34" + stream) == [packets[0], packets[2], packets[3]]
    assert parser.discarded == 2 + 4


def test_parser_is_independent_of_chunking():
    packets = list(bm1000b.synthesize(3.0))
    stream = b"".join(bm1000b.encode(p) for p in packets)
    whole = bm1000b.FrameParser().feed(stream)
    parser = bm1000b.FrameParser()
    pieces = [p for i in range(0, len(stream), 7) for p in parser.feed(stream[i:i + 7])]
    assert whole == pieces == packets


def test_synthesized_patient_desaturates_in_the_middle_third():
    packets = list(bm1000b.synthesize(30.0, rate_hz=50))
    thirds = [packets[i * 500:(i + 1) * 500] for i in range(3)]
    means = [sum(p.spo2 for p in third) / len(third) for third in thirds]
    assert means[0] > 96 and means[1] < 89 and 94 < means[2] < 96
    assert all(p.valid for p in packets)
    assert sum(p.beep for p in packets) in range(34, 40)  # 30 s at about 73 bpm


def test_stream_packets_replays_a_recording_in_a_loop(tmp_path):
    packets = [Packet(pleth=i, pulse_rate=60 + i, spo2=90 + i) for i in range(5)]
    recording = tmp_path / "ttyUSB0"
    recording.write_bytes(b"".join(bm1000b.encode(p) for p in packets))

    async def first(count):
        received = []
        async for packet in bm1000b.stream_packets(str(recording), rate_hz=1000):
            received.append(packet)
            if len(received) == count:
                return received
        return received

    assert asyncio.run(first(12)) == packets * 2 + packets[:2]


def test_stream_packets_without_loop_ends(tmp_path):
    recording = tmp_path / "capture.bin"
    recording.write_bytes(bm1000b.encode(Packet(pulse_rate=61, spo2=93)) * 3)

    async def collect():
        return [p async for p in bm1000b.stream_packets(str(recording), rate_hz=1000, loop=False)]

    assert [p.spo2 for p in asyncio.run(collect())] == [93, 93, 93]


def test_main_writes_a_recording(tmp_path):
    out = tmp_path / "stream.bin"
    assert bm1000b.main([str(out), "--seconds", "2", "--rate", "50"]) == 0
    assert len(out.read_bytes()) == 2 * 50 * bm1000b.PACKET_SIZE
    assert len(bm1000b.FrameParser().feed(out.read_bytes())) == 100
