# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The folder mirror behind nanoedge.core.sync_tree: manifests, the comparison, and the
replacement that leaves the folder whole or as it was. Through ansible-playbook it is
tested in tests/integration/test_sync_tree.py."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import typing as t
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _tree
from ansible_collections.nanoedge.core.plugins.module_utils._tree import (
    TreeError, build_manifest, check_manifest, differences, pack, parse_mode, replace)


def make_tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "run.py").write_text("print('hi')\n")
    (root / "sub" / "run.py").chmod(0o755)
    (root / "sub" / "deeper" / "data.bin").write_bytes(bytes(range(256)) * 300)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\x00")
    return root


def listing(root: Path) -> t.Dict[str, t.Tuple[str, int, bytes]]:
    out = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        out[str(path.relative_to(root))] = (
            "dir" if path.is_dir() else "file", stat.S_IMODE(info.st_mode), b"" if path.is_dir() else path.read_bytes())
    return out


def mirror(src: Path, dest: Path, exclude: t.Sequence[str] = ("__pycache__",), mode: t.Optional[int] = None,
           directory_mode: int = 0o755) -> t.List[t.Dict[str, t.Any]]:
    manifest = build_manifest(str(src), exclude=exclude, mode=mode)
    archive = str(src.parent / "tree.tar.gz")
    pack(str(src), manifest, archive)
    replace(str(dest), archive, manifest, directory_mode)
    return manifest


@pytest.mark.parametrize("value, mode", [("0644", 0o644), ("755", 0o755), (0o600, 0o600), (None, None), ("", None)])
def test_modes_as_users_write_them(value, mode):
    assert parse_mode(value, "mode") == mode


@pytest.mark.parametrize("value", ["rw-r--r--", "99", "0o644x", True, -1, 0o10000])
def test_a_bad_mode_is_named(value):
    with pytest.raises(TreeError, match=r"^mode must be an octal mode such as '0644', got "):
        parse_mode(value, "mode")


def test_manifest_lists_folders_and_files_with_their_modes_and_sums(tmp_path):
    src = make_tree(tmp_path / "src")
    manifest = build_manifest(str(src), exclude=["__pycache__"])
    assert [(e["path"], e["type"]) for e in manifest] == [
        ("a.txt", "file"), ("empty", "dir"), ("sub", "dir"), ("sub/deeper", "dir"), ("sub/deeper/data.bin", "file"),
        ("sub/run.py", "file")]
    run = next(e for e in manifest if e["path"] == "sub/run.py")
    assert run["mode"] == 0o755 and run["size"] == 12
    assert run["sha256"] == hashlib.sha256(b"print('hi')\n").hexdigest()
    assert {e["mode"] for e in build_manifest(str(src), exclude=["__pycache__"], mode=0o600)
            if e["type"] == "file"} == {0o600}


def test_manifest_excludes_by_name_or_relative_path(tmp_path):
    src = make_tree(tmp_path / "src")
    paths = [e["path"] for e in build_manifest(str(src), exclude=["*.pyc", "sub/deeper", "empty"])]
    assert paths == ["__pycache__", "a.txt", "sub", "sub/run.py"]


def test_manifest_of_picked_files_brings_their_folders(tmp_path):
    src = make_tree(tmp_path / "src")
    manifest = build_manifest(str(src), files=["sub/deeper/data.bin", "a.txt"], exclude=["*"])
    assert [e["path"] for e in manifest] == ["a.txt", "sub", "sub/deeper", "sub/deeper/data.bin"]


@pytest.mark.parametrize("files, message", [
    (["missing.txt"], r"files entry 'missing.txt': .*/src/missing.txt is not a file"),
    (["sub"], r"files entry 'sub': .*/src/sub is not a file"),
    (["../a.txt"], r"files entry '../a.txt' is not a path inside the folder"),
    (["/etc/passwd"], r"files entry '/etc/passwd' is not a path inside the folder"),
])
def test_a_bad_files_entry_is_named(tmp_path, files, message):
    src = make_tree(tmp_path / "src")
    with pytest.raises(TreeError, match=message):
        build_manifest(str(src), files=files)


def test_links_to_files_are_followed_and_links_to_folders_refused(tmp_path):
    src = make_tree(tmp_path / "src")
    (src / "link.txt").symlink_to(src / "a.txt")
    entry = next(e for e in build_manifest(str(src)) if e["path"] == "link.txt")
    assert entry["type"] == "file" and entry["size"] == 6
    (src / "linkdir").symlink_to(src / "sub")
    with pytest.raises(TreeError, match=r"/src/linkdir is a link to a folder; only files may be links"):
        build_manifest(str(src))


def test_a_special_file_is_refused_by_name(tmp_path):
    src = make_tree(tmp_path / "src")
    os.mkfifo(str(src / "pipe"))
    with pytest.raises(TreeError, match=r"/src/pipe is neither a file nor a folder"):
        build_manifest(str(src))


def test_src_must_be_a_folder(tmp_path):
    with pytest.raises(TreeError, match=r"^src .*/nowhere is not a folder$"):
        build_manifest(str(tmp_path / "nowhere"))


@pytest.mark.parametrize("manifest, message", [
    ({"a": 1}, r"^the manifest must be a list, got dict$"),
    ([{"path": "a", "type": "link"}], r"^manifest entry 0 is not a file or folder entry"),
    ([{"path": "../a", "type": "dir"}], r"^manifest entry 0: path '../a' is not a path inside the folder$"),
    ([{"path": "a", "type": "dir"}, {"path": "a/", "type": "dir"}], r"^manifest entry 1: a is listed twice$"),
    ([{"path": "a", "type": "file", "mode": 420, "size": -1, "sha256": "0" * 64}],
     r"^manifest entry 0 \(a\) needs a mode, a size and a SHA-256$"),
    ([{"path": "a/b", "type": "file", "mode": 420, "size": 1, "sha256": "0" * 64}],
     r"^manifest entry a/b: its folder a is not in the manifest$"),
])
def test_a_bad_manifest_entry_is_named(manifest, message):
    with pytest.raises(TreeError, match=message):
        check_manifest(manifest)


def test_a_missing_folder_lacks_everything(tmp_path):
    src = make_tree(tmp_path / "src")
    manifest = build_manifest(str(src), exclude=["__pycache__"])
    found = differences(str(tmp_path / "dest"), manifest, 0o755)
    assert found == {"added": [".", "a.txt", "empty", "sub", "sub/deeper", "sub/deeper/data.bin", "sub/run.py"],
                     "removed": [], "changed": []}


def test_replace_makes_an_exact_copy_and_then_nothing_differs(tmp_path):
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "deep" / "dest"
    manifest = mirror(src, dest)
    expected = {k: v for k, v in listing(src).items() if not k.startswith("__pycache__")}
    expected = {k: (kind, 0o755 if kind == "dir" else mode, data) for k, (kind, mode, data) in expected.items()}
    assert listing(dest) == expected
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert differences(str(dest), manifest, 0o755) == {"added": [], "removed": [], "changed": []}
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")], "no build or old folder is left behind"


def test_every_kind_of_difference_is_found(tmp_path):
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    manifest = mirror(src, dest)
    (dest / "a.txt").write_text("ALPHA\n")                 # same size, other content
    (dest / "sub" / "run.py").chmod(0o644)                   # mode
    (dest / "sub" / "deeper" / "data.bin").unlink()          # missing
    (dest / "extra.txt").write_text("x")                     # not in src
    (dest / "olddir" / "inner").mkdir(parents=True)          # a whole folder not in src: listed once
    (dest / "empty").rmdir()
    (dest / "empty").write_text("a file where a folder was")
    dest.chmod(0o700)
    found = differences(str(dest), manifest, 0o755)
    assert found == {"added": ["sub/deeper/data.bin"], "removed": ["extra.txt", "olddir"],
                     "changed": [".", "a.txt", "empty", "sub/run.py"]}
    assert differences(str(dest), manifest, 0o755, uid=os.getuid() + 1)["changed"][0] == "."


def test_ignored_names_in_dest_are_not_compared(tmp_path):
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    manifest = mirror(src, dest)
    (dest / "sub" / "__pycache__").mkdir()
    (dest / "sub" / "__pycache__" / "run.cpython-311.pyc").write_bytes(b"\x00")
    assert differences(str(dest), manifest, 0o755, ignore=["__pycache__"]) == {
        "added": [], "removed": [], "changed": []}
    assert differences(str(dest), manifest, 0o755)["removed"] == ["sub/__pycache__"]


def test_replace_removes_what_src_no_longer_has_and_applies_modes(tmp_path):
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    mirror(src, dest)
    (dest / "stale.txt").write_text("stale")
    (src / "a.txt").unlink()
    (src / "b.txt").write_text("beta\n")
    mirror(src, dest, mode=0o640, directory_mode=0o750)
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt", "empty", "sub"]
    assert stat.S_IMODE((dest / "b.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((dest / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE(dest.stat().st_mode) == 0o750


def tar_of(members: t.Sequence[t.Tuple[str, t.Optional[bytes]]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture()
def installed(tmp_path) -> t.Tuple[Path, t.List[t.Dict[str, t.Any]], t.Dict[str, t.Any]]:
    """A folder already installed, and the manifest of a new version of it."""
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    mirror(src, dest)
    (src / "a.txt").write_text("version two\n")
    manifest = build_manifest(str(src), exclude=["__pycache__"])
    return dest, manifest, listing(dest)


@pytest.mark.parametrize("members, message", [
    ([("a.txt", b"tampered!!!!")], r"archive entry a.txt does not match the manifest \(size 12, SHA-256 "),
    ([("../escape", b"x")], r"archive entry '../escape' is not a path inside the folder"),
    ([("unknown.txt", b"x")], r"archive entry unknown.txt is not in the manifest as a file"),
    ([("sub", b"x")], r"archive entry sub is not in the manifest as a file"),
    ([("empty", None)], r"archive .*/tree.tar.gz lacks a.txt, sub, sub/deeper, sub/deeper/data.bin, sub/run.py$"),
])
def test_a_bad_archive_is_refused_and_the_folder_stays_as_it_was(tmp_path, installed, members, message):
    dest, manifest, before = installed
    archive = tmp_path / "tree.tar.gz"
    archive.write_bytes(tar_of(members))
    with pytest.raises(TreeError, match=message):
        replace(str(dest), str(archive), manifest, 0o755)
    assert listing(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src", "tree.tar.gz"]


def test_a_truncated_archive_is_refused_and_the_folder_stays_as_it_was(tmp_path, installed):
    dest, manifest, before = installed
    archive = tmp_path / "tree.tar.gz"
    pack(str(tmp_path / "src"), manifest, str(archive))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(TreeError, match=r"^archive .*/tree.tar.gz cannot be read: "):
        replace(str(dest), str(archive), manifest, 0o755)
    assert listing(dest) == before


def test_a_file_in_the_way_of_dest_is_named(tmp_path):
    src = make_tree(tmp_path / "src")
    manifest = build_manifest(str(src))
    (tmp_path / "dest").write_text("not a folder")
    with pytest.raises(TreeError, match=r"^dest .*/dest exists and is not a folder$"):
        differences(str(tmp_path / "dest"), manifest, 0o755)
    with pytest.raises(TreeError, match=r"^dest .*/dest exists and is not a folder$"):
        replace(str(tmp_path / "dest"), str(tmp_path / "none.tar.gz"), manifest, 0o755)
    assert (tmp_path / "dest").read_text() == "not a folder"


@pytest.mark.parametrize("exchange", [True, False], ids=["one-step", "two-renames"])
def test_a_failed_swap_puts_the_old_folder_back(tmp_path, installed, monkeypatch, exchange):
    dest, manifest, before = installed
    archive = tmp_path / "tree.tar.gz"
    pack(str(tmp_path / "src"), manifest, str(archive))
    real_rename = os.rename

    def rename(source: str, target: str) -> None:
        if ".new-" in os.path.basename(source):
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    def no_exchange(first: str, second: str) -> bool:
        if exchange:
            raise OSError(28, "No space left on device")
        return False

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(_tree, "_exchange", no_exchange)
    with pytest.raises(TreeError, match=r"^cannot build the new .*/dest beside it in .*: \[Errno 28\] No space left"):
        replace(str(dest), str(archive), manifest, 0o755)
    assert listing(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src", "tree.tar.gz"]


@pytest.mark.parametrize("exchange", [True, False], ids=["one-step", "two-renames"])
def test_the_new_folder_is_swapped_in_either_way(tmp_path, installed, monkeypatch, exchange):
    dest, manifest, _before = installed
    if not exchange:
        monkeypatch.setattr(_tree, "_exchange", lambda first, second: False)
    archive = tmp_path / "tree.tar.gz"
    pack(str(tmp_path / "src"), manifest, str(archive))
    inode = dest.stat().st_ino
    replace(str(dest), str(archive), manifest, 0o755)
    assert (dest / "a.txt").read_text() == "version two\n"
    assert dest.stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "src", "tree.tar.gz"]


def test_the_kernel_swaps_two_folders_in_one_step(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from-a").touch()
    (tmp_path / "b").mkdir()
    if not _tree._exchange(str(tmp_path / "a"), str(tmp_path / "b")):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from-a"]
    assert list((tmp_path / "a").iterdir()) == []
    with pytest.raises(FileNotFoundError):
        _tree._exchange(str(tmp_path / "a"), str(tmp_path / "missing"))


def test_leftovers_of_a_killed_run_are_removed(tmp_path, installed):
    dest, manifest, _before = installed
    (tmp_path / ".dest.new-abcd1234" / "half").mkdir(parents=True)
    (tmp_path / ".dest.old-abcd1234" / "dest").mkdir(parents=True)
    (tmp_path / ".other.new-abcd1234").mkdir()
    archive = tmp_path / "tree.tar.gz"
    pack(str(tmp_path / "src"), manifest, str(archive))
    replace(str(dest), str(archive), manifest, 0o755)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.new-abcd1234", "dest", "src", "tree.tar.gz"]


def test_set_user_id_survives_the_change_of_owner(tmp_path):
    src = make_tree(tmp_path / "src")
    dest = tmp_path / "dest"
    manifest = build_manifest(str(src), exclude=["__pycache__"], mode=0o4755)
    archive = str(tmp_path / "tree.tar.gz")
    pack(str(src), manifest, archive)
    replace(str(dest), archive, manifest, 0o755, os.getuid(), os.getgid())
    assert stat.S_IMODE((dest / "sub" / "run.py").stat().st_mode) == 0o4755
    assert differences(str(dest), manifest, 0o755, os.getuid(), os.getgid()) == {
        "added": [], "removed": [], "changed": []}


def test_a_parent_that_cannot_hold_the_new_folder_is_named(tmp_path):
    src = make_tree(tmp_path / "src")
    manifest = build_manifest(str(src))
    archive = str(tmp_path / "tree.tar.gz")
    pack(str(src), manifest, archive)
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(TreeError, match=r"^cannot build the new .*/file/dest beside it in .*/file: "):
        replace(str(tmp_path / "file" / "dest"), archive, manifest, 0o755)


def test_dest_with_a_trailing_slash_is_the_same_folder(tmp_path):
    src = make_tree(tmp_path / "src")
    manifest = build_manifest(str(src))
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(TreeError, match=r"^dest .*/link exists and is not a folder$"):
        differences(str(tmp_path / "link") + "/", manifest, 0o755)
