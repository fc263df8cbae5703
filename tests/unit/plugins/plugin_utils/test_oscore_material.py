# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's OSCORE key material: one secret per (manager, peer) pair, generated once,
private, and the two halves of each pair's context made from it."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils import _oscore_material as material


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_pair_is_generated_once_and_kept_private(tmp_path):
    directory = str(tmp_path / "oscore")
    first = material.pair_material(directory, "m1", "w1")
    again = material.pair_material(directory, "m1", "w1")
    assert first == again
    secret = first["server"]["secret_hex"]
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert (tmp_path / "oscore" / "m1" / "w1.secret").read_text() == secret + "\n"
    assert mode_of(tmp_path / "oscore") == 0o700
    assert mode_of(tmp_path / "oscore" / "m1") == 0o700
    assert mode_of(tmp_path / "oscore" / "m1" / "w1.secret") == 0o600


def test_the_two_halves_mirror_each_other(tmp_path):
    pair = material.pair_material(str(tmp_path), "m2", "w1+controller")
    secret = pair["server"]["secret_hex"]
    assert pair["id"] == "4714027b6397" == material.peer_id("w1+controller")
    assert pair["server"] == {"sender-id_hex": "", "recipient-id_hex": "4714027b6397", "secret_hex": secret,
                              "salt_hex": "", "id-context_ascii": "m2"}
    assert pair["client"] == {"sender-id_hex": "4714027b6397", "recipient-id_hex": "", "secret_hex": secret,
                              "salt_hex": "", "id-context_ascii": "m2"}
    assert (pair["manager"], pair["name"]) == ("m2", "w1+controller")


def test_every_pair_has_its_own_secret(tmp_path):
    secrets = {material.pair_material(str(tmp_path), manager, peer)["server"]["secret_hex"]
               for manager in ("m1", "m2") for peer in ("w1", "w1+controller", "controller")}
    assert len(secrets) == 6


def test_rotation_is_deleting_the_secret(tmp_path):
    before = material.pair_material(str(tmp_path), "m1", "w1")
    other = material.pair_material(str(tmp_path), "m1", "w2")
    os.remove(tmp_path / "m1" / "w1.secret")
    after = material.pair_material(str(tmp_path), "m1", "w1")
    assert after["server"]["secret_hex"] != before["server"]["secret_hex"]
    assert after["id"] == before["id"]
    assert material.pair_material(str(tmp_path), "m1", "w2") == other


@pytest.mark.parametrize("manager, peer, message", [
    ("m1", "w1\n", "peer 'w1\\n': must be a node name, optionally +tag"),
    ("m1", "../w1", "peer '../w1': must be a node name, optionally +tag"),
    ("m1", "w1+", "peer 'w1+': must be a node name, optionally +tag"),
    ("m1+x", "w1", "manager 'm1+x': must be a node name"),
    ("M1", "w1", "manager 'M1': must be a node name"),
])
def test_names_are_whole_node_names(tmp_path, manager, peer, message):
    with pytest.raises(material.MaterialError) as info:
        material.pair_material(str(tmp_path), manager, peer)
    assert str(info.value).startswith(message)


def test_the_folder_must_be_absolute_and_private(tmp_path):
    with pytest.raises(material.MaterialError, match="^directory 'rel': must be an absolute path$"):
        material.pair_material("rel", "m1", "w1")
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    with pytest.raises(material.MaterialError) as info:
        material.pair_material(str(tmp_path / "open"), "m1", "w1")
    assert str(info.value) == "%s is open to others (mode 0755): the key material needs 0700" % (tmp_path / "open")


def test_a_damaged_secret_is_named(tmp_path):
    material.pair_material(str(tmp_path), "m1", "w1")
    (tmp_path / "m1" / "w1.secret").write_text("short\n")
    with pytest.raises(material.MaterialError) as info:
        material.pair_material(str(tmp_path), "m1", "w1")
    assert str(info.value) == ("%s does not hold a 32-byte secret in hex; delete it to rotate the pair's keys"
                               % (tmp_path / "m1" / "w1.secret"))
