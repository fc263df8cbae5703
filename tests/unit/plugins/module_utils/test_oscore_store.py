# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The OSCORE context folders: written by content, a fresh sequence only for new key material, pruning,
check mode, and the errors that name the entry at fault."""

from __future__ import annotations

import json
import os
import pathlib
import stat

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _oscore_store as store


def settings(secret: str = "aa" * 32, recipient: str = "01", context: str = "m1") -> dict:
    return {"sender-id_hex": "00", "recipient-id_hex": recipient, "secret_hex": secret, "salt_hex": "",
            "id-context_ascii": context}


def tree(root: pathlib.Path) -> dict:
    """Every file under root with its content and every entry with its mode."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = (oct(stat.S_IMODE(path.stat().st_mode)), path.read_text() if path.is_file() else None)
    return found


def test_first_run_writes_every_context_and_credentials(tmp_path):
    root = tmp_path / "oscore"
    result = store.sync(str(root), [{"path": "m1", "settings": settings()},
                                    {"path": "w1+site/m2", "settings": settings(recipient="02", context="m2")}],
                        [{"path": "credentials.json", "content": {"coap://m1/*": {"oscore": {"basedir": "m1/"}}}}])
    assert (result.written, result.reset) == (["m1", "w1+site/m2"], [])
    assert (result.credentials, result.removed) == (["credentials.json"], [])
    assert result.folders == [".", "m1", "w1+site", "w1+site/m2"]
    found = tree(root)
    assert {key: entry[0] for key, entry in found.items()} == {
        "credentials.json": "0o600", "m1": "0o700", "m1/settings.json": "0o600", "w1+site": "0o700",
        "w1+site/m2": "0o700", "w1+site/m2/settings.json": "0o600"}
    assert json.loads(found["w1+site/m2/settings.json"][1]) == settings(recipient="02", context="m2")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_same_content_in_another_format_changes_nothing_and_keeps_the_sequence(tmp_path):
    root = tmp_path / "oscore"
    (root / "m1").mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    os.chmod(root / "m1", 0o700)
    (root / "m1" / "settings.json").write_text(json.dumps(settings(), separators=(",", ":")))
    os.chmod(root / "m1" / "settings.json", 0o600)
    (root / "m1" / "sequence.json").write_text('{"next": 42}')
    before = tree(root)
    result = store.sync(str(root), [{"path": "m1", "settings": settings()}])
    assert not result.changed
    assert tree(root) == before


@pytest.mark.parametrize("had_sequence, reset", [(True, ["m1"]), (False, [])])
def test_new_key_material_starts_a_fresh_sequence(tmp_path, had_sequence, reset):
    root = tmp_path / "oscore"
    store.sync(str(root), [{"path": "m1", "settings": settings()}, {"path": "m2", "settings": settings(context="m2")}])
    for name in ("m1", "m2"):
        if had_sequence:
            (root / name / "sequence.json").write_text('{"next": 42}')
    result = store.sync(str(root), [{"path": "m1", "settings": settings(secret="bb" * 32)},
                                    {"path": "m2", "settings": settings(context="m2")}])
    assert (result.written, result.reset) == (["m1"], reset)
    assert not (root / "m1" / "sequence.json").exists()
    assert (root / "m2" / "sequence.json").exists() == had_sequence  # the unchanged context keeps its sequence
    assert json.loads((root / "m1" / "settings.json").read_text())["secret_hex"] == "bb" * 32


def test_wrong_modes_are_fixed_without_rewriting(tmp_path):
    root = tmp_path / "oscore"
    store.sync(str(root), [{"path": "m1", "settings": settings()}])
    (root / "m1" / "sequence.json").write_text('{"next": 42}')
    os.chmod(root / "m1" / "settings.json", 0o644)
    os.chmod(root / "m1", 0o755)
    result = store.sync(str(root), [{"path": "m1", "settings": settings()}])
    assert (result.folders, result.files_fixed, result.written) == (["m1"], ["m1"], [])
    assert stat.S_IMODE((root / "m1" / "settings.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "m1").stat().st_mode) == 0o700
    assert (root / "m1" / "sequence.json").exists()


def test_prune_revokes_unlisted_peers_and_keeps_what_aiocoap_writes(tmp_path):
    root = tmp_path / "oscore"
    store.sync(str(root), [{"path": name, "settings": settings(recipient=rid)}
                           for name, rid in (("w1", "01"), ("w2", "02"), ("w9+site/m1", "09"))])
    (root / "w1" / "sequence.json").write_text('{"next": 1}')
    (root / "stray.txt").write_text("left over")
    kept = [{"path": "w1", "settings": settings(recipient="01")}]
    check = store.sync(str(root), kept, prune=True, check_mode=True)
    assert check.removed == ["stray.txt", "w2", "w9+site"]
    assert (root / "w2").exists()  # check mode wrote nothing
    result = store.sync(str(root), kept, prune=True)
    assert result.removed == ["stray.txt", "w2", "w9+site"]
    assert sorted(tree(root)) == ["w1", "w1/sequence.json", "w1/settings.json"]
    assert not store.sync(str(root), kept, prune=True).changed


def test_prune_keeps_listed_nested_contexts_and_credentials(tmp_path):
    root = tmp_path / "oscore"
    wanted = [{"path": "m1+site/m1", "settings": settings()}]
    files = [{"path": "m1+site.json", "content": {"coap://m1/*": {"oscore": {"basedir": "m1+site/m1/"}}}}]
    store.sync(str(root), wanted + [{"path": "m1+site/m2", "settings": settings(context="m2")}], files)
    result = store.sync(str(root), wanted, files, prune=True)
    assert result.removed == ["m1+site/m2"]
    assert sorted(tree(root)) == ["m1+site", "m1+site.json", "m1+site/m1", "m1+site/m1/settings.json"]


def test_check_mode_writes_nothing(tmp_path):
    root = tmp_path / "oscore"
    result = store.sync(str(root), [{"path": "m1", "settings": settings()}], check_mode=True)
    assert result.written == ["m1"] and result.changed
    assert not root.exists()
    assert result.diff() == "write m1/settings.json\nfix the mode or owner of .\nfix the mode or owner of m1\n"


@pytest.mark.parametrize("contexts, credentials, message", [
    ([{"path": "/abs", "settings": settings()}], [], "contexts[0].path: must be a relative path, got '/abs'"),
    ([{"path": "a/../b", "settings": settings()}], [], "contexts[0].path: 'a/../b' must not contain empty"),
    ([{"path": "a/b/c", "settings": settings()}], [], "contexts[0].path: 'a/b/c' is deeper than 2 folders"),
    ([{"path": "m1", "settings": {}}], [], "contexts[0].settings: must be a non-empty dict"),
    ([{"path": "m1"}], [], "contexts[0]: must be a dict with exactly path and settings"),
    ([{"path": "m1", "settings": settings()}, {"path": "m1", "settings": settings()}], [],
     "contexts[1].path: 'm1' is listed twice"),
    ([{"path": "m1", "settings": settings()}], [{"path": "m1/credentials.json", "content": {}}],
     "credentials 'm1/credentials.json': lies inside the context folder 'm1'"),
    ([], [{"path": "", "content": {}}], "credentials[0].path: must be a relative path, got ''"),
])
def test_bad_entries_are_refused_naming_the_entry(tmp_path, contexts, credentials, message):
    with pytest.raises(store.StoreError) as exc:
        store.sync(str(tmp_path / "oscore"), contexts, credentials)
    assert str(exc.value).startswith(message)
    assert not (tmp_path / "oscore").exists()


def test_a_link_where_a_context_folder_must_be_is_refused(tmp_path):
    root = tmp_path / "oscore"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "m1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(store.StoreError, match="oscore/m1: must be a folder, not a link"):
        store.sync(str(root), [{"path": "m1", "settings": settings()}])
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("owner, group, message", [
    ("no-such-user-here", None, "owner 'no-such-user-here': no such user"),
    (None, "no-such-group-here", "group 'no-such-group-here': no such group"),
])
def test_unknown_owner_or_group(tmp_path, owner, group, message):
    with pytest.raises(store.StoreError, match=message):
        store.sync(str(tmp_path / "oscore"), [], owner=owner, group=group)


def test_check_mode_before_the_owner_exists_says_what_it_would_do(tmp_path):
    """The play creates the user before this task; in check mode it has not, and that is no error."""
    root = tmp_path / "oscore"
    result = store.sync(str(root), [{"path": "m1", "settings": settings()}], owner="no-such-user-here",
                        group="no-such-group-here", check_mode=True)
    assert (result.written, result.folders) == (["m1"], [".", "m1"])
    assert not root.exists()


def test_relative_root_is_refused():
    with pytest.raises(store.StoreError, match="path 'oscore': must be absolute"):
        store.sync("oscore", [])
