# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unpacking some folders of an image from its layers: safe against what a layer may hold."""

from __future__ import annotations

import gzip
import os
import stat
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import RegistryClient
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import ImageError
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_layers import (
    cache_folder,
    prefixes_of,
    unpack,
)
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.oci_fake import (
    OCI_LAYER,
    FakeRegistry,
    digest_of,
    make_layer,
)

PATHS = ["/opt/nanoedge/service", "/opt/nanoedge/lib/nanoedge_ns"]
BASE = make_layer([("bin", "dir", None), ("bin/sh", "file", b"#!sh"), ("opt", "dir", None),
                   ("opt/nanoedge", "dir", None), ("opt/nanoedge/lib", "dir", None),
                   ("opt/nanoedge/lib/aiocoap/__init__.py", "file", b"aiocoap")])
APP = make_layer([("opt/nanoedge/lib/nanoedge_ns", "dir", None),
                  ("opt/nanoedge/lib/nanoedge_ns/__init__.py", "file", b"ns"),
                  ("opt/nanoedge/lib/nanoedge_ns/coapio.py", "file", b"coapio", 0o4755),
                  ("opt/nanoedge/service", "dir", None),
                  ("opt/nanoedge/service/main.py", "file", b"print('spo2')")])


@pytest.fixture
def fake():
    registry = FakeRegistry()
    yield registry
    registry.close()


def tree(root: str) -> t.Dict[str, t.Any]:
    """Every file (its bytes), link (-> target) and folder ('/') under ``root``."""
    found: t.Dict[str, t.Any] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = "/"
            else:
                with open(path, "rb") as handle:
                    found[rel] = handle.read()
    return found


def run(fake: FakeRegistry, layers: t.Sequence[t.Any], tmp_path: t.Any, paths: t.Sequence[str] = tuple(PATHS),
        **kwargs: t.Any) -> str:
    digest = fake.add_image("n/svc", "1.0", {}, layers=layers)
    return unpack(RegistryClient(fake.url), "n/svc", digest, "IMG", paths, str(tmp_path / "cache"), **kwargs)


def error(fake: FakeRegistry, layers: t.Sequence[t.Any], tmp_path: t.Any, **kwargs: t.Any) -> str:
    with pytest.raises(ImageError) as exc:
        run(fake, layers, tmp_path, **kwargs)
    assert not [p for p in os.listdir(tmp_path / "cache") if p.startswith(("sha256-", ".unpack-"))]
    return str(exc.value)


def test_only_the_paths_asked_for(fake, tmp_path):
    root = run(fake, [BASE, APP], tmp_path)
    assert tree(root) == {
        "opt": "/", "opt/nanoedge": "/", "opt/nanoedge/lib": "/", "opt/nanoedge/lib/nanoedge_ns": "/",
        "opt/nanoedge/lib/nanoedge_ns/__init__.py": b"ns", "opt/nanoedge/lib/nanoedge_ns/coapio.py": b"coapio",
        "opt/nanoedge/service": "/", "opt/nanoedge/service/main.py": b"print('spo2')"}
    # permission bits only: no set-user-ID from an image
    assert stat.S_IMODE(os.stat(os.path.join(root, "opt/nanoedge/lib/nanoedge_ns/coapio.py")).st_mode) == 0o755
    assert os.path.basename(root).startswith("sha256-")


def test_a_cached_image_costs_no_request(fake, tmp_path):
    first = run(fake, [BASE, APP], tmp_path)
    before = len(fake.requests)
    assert run(fake, [BASE, APP], tmp_path) == first
    assert len(fake.requests) == before


def test_a_layer_without_the_paths_is_not_read_again(fake, tmp_path):
    run(fake, [BASE, APP], tmp_path)
    fake.requests.clear()
    other_app = make_layer([("opt/nanoedge/service/main.py", "file", b"print('hr')"),
                            ("opt/nanoedge/lib/nanoedge_ns/__init__.py", "file", b"ns")])
    root = run(fake, [BASE, other_app], tmp_path)
    assert tree(root)["opt/nanoedge/service/main.py"] == b"print('hr')"
    fetched = [path for _method, path in fake.requests if "/blobs/" in path]
    assert "/v2/n/svc/blobs/" + digest_of(BASE) not in fetched
    assert "/v2/n/svc/blobs/" + digest_of(other_app) in fetched


def test_whiteouts_remove_what_lower_layers_hold(fake, tmp_path):
    lower = make_layer([("opt/nanoedge/service/main.py", "file", b"old"),
                        ("opt/nanoedge/service/helper.py", "file", b"helper"),
                        ("opt/nanoedge/lib/nanoedge_ns/gone.py", "file", b"gone"),
                        ("opt/nanoedge/lib/nanoedge_ns/kept.py", "file", b"kept")])
    upper = make_layer([("opt/nanoedge/service/.wh.helper.py", "file", b""),
                        ("opt/nanoedge/service/main.py", "file", b"new"),
                        # opaque: the folder holds only what this layer puts there, even when listed first
                        ("opt/nanoedge/lib/nanoedge_ns/new.py", "file", b"new"),
                        ("opt/nanoedge/lib/nanoedge_ns/.wh..wh..opq", "file", b"")])
    files = {k: v for k, v in tree(run(fake, [lower, upper], tmp_path)).items() if v != "/"}
    assert files == {"opt/nanoedge/service/main.py": b"new", "opt/nanoedge/lib/nanoedge_ns/new.py": b"new"}


def test_a_whiteout_of_a_parent_folder_keeps_what_the_same_layer_adds(fake, tmp_path):
    lower = make_layer([("opt/nanoedge/lib/nanoedge_ns/old.py", "file", b"old"),
                        ("opt/nanoedge/service/main.py", "file", b"main")])
    upper = make_layer([("opt/nanoedge/.wh.lib", "file", b""),
                        ("opt/nanoedge/lib/nanoedge_ns/fresh.py", "file", b"fresh")])
    files = {k: v for k, v in tree(run(fake, [lower, upper], tmp_path)).items() if v != "/"}
    assert files == {"opt/nanoedge/lib/nanoedge_ns/fresh.py": b"fresh", "opt/nanoedge/service/main.py": b"main"}


def test_links_inside_the_folder_and_hard_links_as_copies(fake, tmp_path):
    layer = make_layer([("opt/nanoedge/service/main.py", "file", b"main"),
                        ("opt/nanoedge/service/alias.py", "symlink", "main.py"),
                        ("opt/nanoedge/service/rooted.py", "symlink", "/opt/nanoedge/service/main.py"),
                        ("opt/nanoedge/service/copy.py", "hardlink", "opt/nanoedge/service/main.py"),
                        ("opt/nanoedge/service/pipe", "fifo", None),
                        ("opt/nanoedge/lib/nanoedge_ns/__init__.py", "file", b"")])
    found = tree(run(fake, [layer], tmp_path))
    assert found["opt/nanoedge/service/alias.py"] == "-> main.py"
    # an absolute target means the image's root, which is the folder
    assert found["opt/nanoedge/service/rooted.py"] == "-> main.py"
    assert found["opt/nanoedge/service/copy.py"] == b"main"
    assert "opt/nanoedge/service/pipe" not in found


@pytest.mark.parametrize("entries, message", [
    ([("opt/nanoedge/service/../../../etc/passwd", "file", b"x")],
     "entry 'opt/nanoedge/service/../../../etc/passwd' leaves the image ('..')"),
    ([("/opt/nanoedge/service/main.py", "file", b"x")], "entry '/opt/nanoedge/service/main.py' is an absolute path"),
    ([("opt/nanoedge/service/evil", "symlink", "../../../../etc")],
     "link 'opt/nanoedge/service/evil' -> '../../../../etc' leaves the folder"),
    ([("opt/nanoedge/service/evil", "symlink", "/../etc")], "link 'opt/nanoedge/service/evil' -> '/../etc' leaves the folder"),
    ([("opt/nanoedge/service/sub", "symlink", "../lib"), ("opt/nanoedge/service/sub/x.py", "file", b"x")],
     "entry 'opt/nanoedge/service/sub/x.py' passes through the link 'opt/nanoedge/service/sub'"),
    ([("opt/nanoedge/service/x", "hardlink", "etc/shadow")],
     "hard link 'opt/nanoedge/service/x' -> 'etc/shadow': the target is not a file unpacked here"),
])
def test_unsafe_entries_are_refused(fake, tmp_path, entries, message):
    layer = make_layer(entries)
    assert error(fake, [layer], tmp_path) == "image IMG: layer %s: %s" % (digest_of(layer), message)


def test_a_link_of_a_lower_layer_is_not_written_through(fake, tmp_path):
    lower = make_layer([("opt/nanoedge/service", "symlink", "../../etc")])
    upper = make_layer([("opt/nanoedge/service/main.py", "file", b"x")])
    assert error(fake, [lower, upper], tmp_path) == (
        "image IMG: layer %s: entry 'opt/nanoedge/service/main.py' passes through the link 'opt/nanoedge/service'"
        % digest_of(upper))


def test_a_file_replacing_a_parent_folder_removes_it(fake, tmp_path):
    lower = make_layer([("opt/nanoedge/service/main.py", "file", b"x"),
                        ("opt/nanoedge/lib/nanoedge_ns/__init__.py", "file", b"")])
    upper = make_layer([("opt/nanoedge/lib", "file", b"not a folder")])
    assert error(fake, [lower, upper], tmp_path) == "image IMG: the image has no /opt/nanoedge/lib/nanoedge_ns"


def test_missing_paths_are_named(fake, tmp_path):
    assert error(fake, [BASE, APP], tmp_path, paths=PATHS + ["/opt/nanoedge/lib/other", "/srv"]) == (
        "image IMG: the image has no /opt/nanoedge/lib/other, /srv")


def test_unpacked_size_is_bounded(fake, tmp_path):
    layer = make_layer([("opt/nanoedge/service/a", "file", b"\0" * 6000),
                        ("opt/nanoedge/service/b", "file", b"\0" * 6000)])
    assert error(fake, [layer], tmp_path, max_bytes=10000) == (
        "image IMG: layer %s: unpacking 'opt/nanoedge/service/b' goes over the limit of 10000 bytes" % digest_of(layer))


def test_a_compression_bomb_is_stopped(fake, tmp_path):
    layer = make_layer([("opt/nanoedge/service/a", "file", b"\0" * 50000)])
    assert error(fake, [layer], tmp_path, max_bytes=10000) == (
        "image IMG: layer %s: the layer expands to more than 40000 bytes" % digest_of(layer))


def test_an_oversize_layer_is_not_downloaded(fake, tmp_path):
    layer = make_layer([("opt/nanoedge/service/a", "file", os.urandom(3000))])
    assert error(fake, [layer], tmp_path, max_bytes=1000) == (
        "image IMG: layer %s is %d bytes, more than the limit of 1000" % (digest_of(layer), len(layer)))
    assert not [p for _m, p in fake.requests if p.endswith(digest_of(layer))]


def test_a_tampered_layer_is_refused(fake, tmp_path):
    fake.tamper.add(digest_of(APP))
    assert error(fake, [BASE, APP], tmp_path) == (
        "image IMG: blob %s is 18 bytes, the manifest says %d" % (digest_of(APP), len(APP)))


def test_uncompressed_layers_and_unsupported_media_types(fake, tmp_path):
    plain = make_layer([("opt/nanoedge/service/main.py", "file", b"plain"),
                        ("opt/nanoedge/lib/nanoedge_ns/x.py", "file", b"")], compress=False)
    root = run(fake, [{"mediaType": OCI_LAYER, "size": len(plain), "digest": fake.add_blob(plain)}], tmp_path)
    assert tree(root)["opt/nanoedge/service/main.py"] == b"plain"
    zstd = {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 4, "digest": fake.add_blob(b"zstd")}
    assert error(fake, [zstd], tmp_path / "other") == (
        "image IMG: layer %s has media type 'application/vnd.oci.image.layer.v1.tar+zstd'; only tar and "
        "gzip-compressed tar layers can be read" % zstd["digest"])


def test_a_corrupt_layer_is_named(fake, tmp_path):
    broken = gzip.compress(b"this is no tar archive" * 40)
    message = error(fake, [broken], tmp_path)
    assert message.startswith("image IMG: layer %s cannot be read: " % digest_of(broken))


def test_the_platform_of_an_index(fake, tmp_path):
    amd = make_layer([("opt/nanoedge/service/main.py", "file", b"amd64")])
    arm = make_layer([("opt/nanoedge/service/main.py", "file", b"arm64")])
    index = fake.add_index("n/multi", "1.0", [(("linux", "amd64", None), {}), (("linux", "arm64", None), {})],
                           layers=[[amd], [arm]])
    client = RegistryClient(fake.url)
    cache = str(tmp_path / "cache")
    arm_root = unpack(client, "n/multi", index, "IMG", ["/opt/nanoedge/service"], cache, platform="linux/arm64")
    first_root = unpack(client, "n/multi", index, "IMG", ["/opt/nanoedge/service"], cache)
    assert tree(arm_root)["opt/nanoedge/service/main.py"] == b"arm64"
    assert tree(first_root)["opt/nanoedge/service/main.py"] == b"amd64"


@pytest.mark.parametrize("paths, message", [
    (["opt/x"], "'opt/x' is not an absolute path without '..'"),
    (["/opt/../etc"], "'/opt/../etc' is not an absolute path without '..'"),
    (["/"], "the image's root folder cannot be unpacked whole; name folders in it"),
])
def test_paths_must_be_absolute_folders(paths, message):
    with pytest.raises(ValueError) as exc:
        prefixes_of(paths)
    assert str(exc.value) == message


def test_cache_folder_is_named_after_digest_paths_and_platform():
    digest = "sha256:" + "ab" * 32
    one = cache_folder("/c", digest, ("opt/a",), None)
    assert one.startswith("/c/sha256-" + "ab" * 32 + ".")
    assert cache_folder("/c", digest, ("opt/a",), "") == one
    assert cache_folder("/c", digest, ("opt/b",), None) != one
    assert cache_folder("/c", digest, ("opt/a",), "linux/arm64") != one
    with pytest.raises(ValueError):
        cache_folder("/c", "latest", ("opt/a",), None)
