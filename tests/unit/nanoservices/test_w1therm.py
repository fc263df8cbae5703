# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from nanoedge_ns import w1therm

GOOD = "52 02 4b 46 7f ff 0c 10 29 : crc=29 YES\n52 02 4b 46 7f ff 0c 10 29 t=37125\n"


def test_crc8_known_vector():
    # Maxim application note 27: ROM code 02 1C B8 01 00 00 00 has CRC A2
    assert w1therm.crc8(bytes.fromhex("021cb801000000")) == 0xA2
    assert w1therm.crc8(bytes.fromhex("021cb801000000a2")) == 0


def test_parse_good_reading():
    assert w1therm.parse_w1_slave(GOOD) == 37.125


def test_parse_negative_temperature():
    scratch = bytes.fromhex("5effffff7fff0c10")
    line = " ".join("%02x" % b for b in scratch + bytes((w1therm.crc8(scratch),)))
    assert w1therm.parse_w1_slave("%s : crc=00 YES\n%s t=-10125\n" % (line, line)) == -10.125


@pytest.mark.parametrize("text, message", [
    ("52 02 : crc=29 YES\n", "w1_slave: expected 2 lines, got 1"),
    (GOOD.replace("YES", "NO"), "w1_slave: the driver reports a CRC error: '52 02 4b 46 7f ff 0c 10 29 : crc=29 NO'"),
    (GOOD.replace("10 29 :", "10 28 :"), "w1_slave: CRC mismatch (computed 29, device sent 28)"),
    (GOOD.replace("52 02 4b", "52 4b"), "w1_slave: scratchpad has 8 bytes, expected 9"),
    (GOOD.replace("52 02", "zz 02", 1), "w1_slave: unreadable scratchpad 'zz 02 4b 46 7f ff 0c 10 29 : crc=29 YES'"),
    (GOOD.replace("t=37125", "37125"), "w1_slave: no t= value in '52 02 4b 46 7f ff 0c 10 29 37125'"),
    (GOOD.replace("t=37125", "t=hot"), "w1_slave: bad temperature 't=hot'"),
    (GOOD.replace("t=37125", "t=85000"), "w1_slave: 85.000 C is the power-on value, no conversion happened"),
])
def test_parse_rejects(text, message):
    with pytest.raises(w1therm.W1Error) as error:
        w1therm.parse_w1_slave(text)
    assert str(error.value) == message


def test_find_sensors(tmp_path):
    for name in ("28-0000000000b2", "28-0000000000a1", "10-000000000001", "w1_bus_master1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "w1_slave").write_text(GOOD)
    assert w1therm.find_sensors(str(tmp_path)) == [
        str(tmp_path / "28-0000000000a1" / "w1_slave"), str(tmp_path / "28-0000000000b2" / "w1_slave")]
    assert w1therm.find_sensors(str(tmp_path), family="10") == [str(tmp_path / "10-000000000001" / "w1_slave")]
    assert w1therm.find_sensors(str(tmp_path / "missing")) == []
