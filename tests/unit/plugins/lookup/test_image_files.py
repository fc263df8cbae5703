# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import os

import pytest

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import lookup_loader

from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.oci_fake import (
    FakeRegistry,
    digest_of,
    make_layer,
)

APP = make_layer([("opt/nanoedge/service/main.py", "file", b"print(1)"),
                  ("opt/nanoedge/lib/nanoedge_ns/__init__.py", "file", b"")])


@pytest.fixture
def fake():
    registry = FakeRegistry()
    yield registry
    registry.close()


@pytest.fixture
def lookup():
    return lookup_loader.get("nanoedge.core.image_files")


def test_returns_the_folder_holding_the_paths(fake, lookup, tmp_path):
    digest = fake.add_image("nanoedge/spo2", "1.0", {}, layers=[APP])
    (folder,) = lookup.run(["/opt/nanoedge/service"], {}, registry=fake.url, repository="nanoedge/spo2",
                           digest=digest, cache_dir=str(tmp_path))
    assert os.path.dirname(folder) == str(tmp_path)
    with open(os.path.join(folder, "opt/nanoedge/service/main.py"), "rb") as handle:
        assert handle.read() == b"print(1)"
    assert not os.path.exists(os.path.join(folder, "opt/nanoedge/lib"))


@pytest.mark.parametrize("terms, options, message", [
    ([], {}, "nanoedge.core.image_files: name at least one folder of the image to unpack"),
    (["/opt/nanoedge/service"], {"repository": "Bad Name"}, "nanoedge.core.image_files: 'Bad Name' is not a valid "
                                                            "repository name"),
    (["/opt/nanoedge/service"], {"digest": "latest"}, "nanoedge.core.image_files: image {host}/nanoedge/spo2@latest: "
                                                      "'latest' is not an image digest (algorithm:hex)"),
    (["opt"], {}, "nanoedge.core.image_files: image {host}/nanoedge/spo2@{digest}: 'opt' is not an absolute path "
                  "without '..'"),
    (["/srv"], {}, "nanoedge.core.image_files: image {host}/nanoedge/spo2@{digest}: the image has no /srv"),
])
def test_errors_name_the_plugin_and_the_image(fake, lookup, tmp_path, terms, options, message):
    digest = fake.add_image("nanoedge/spo2", "1.0", {}, layers=[APP])
    arguments = dict({"registry": fake.url, "repository": "nanoedge/spo2", "digest": digest,
                      "cache_dir": str(tmp_path)}, **options)
    with pytest.raises(AnsibleLookupError) as exc:
        lookup.run(terms, {}, **arguments)
    assert str(exc.value) == message.format(host=fake.host, digest=digest)


def test_a_tampered_layer_fails_the_lookup(fake, lookup, tmp_path):
    digest = fake.add_image("nanoedge/spo2", "1.0", {}, layers=[APP])
    fake.tamper.add(digest_of(APP))
    with pytest.raises(AnsibleLookupError) as exc:
        lookup.run(["/opt/nanoedge/service"], {}, registry=fake.url, repository="nanoedge/spo2", digest=digest,
                   cache_dir=str(tmp_path))
    assert str(exc.value) == ("nanoedge.core.image_files: image %s/nanoedge/spo2@%s: blob %s is 18 bytes, the "
                              "manifest says %d" % (fake.host, digest, digest_of(APP), len(APP)))


def test_credentials(lookup, tmp_path, monkeypatch):
    fake = FakeRegistry(auth="basic", users={"edge": "pa55"})
    try:
        digest = fake.add_image("nanoedge/spo2", "1.0", {}, layers=[APP])
        arguments = {"registry": fake.url, "repository": "nanoedge/spo2", "digest": digest, "cache_dir": str(tmp_path)}
        with pytest.raises(AnsibleLookupError) as exc:
            lookup.run(["/opt/nanoedge/service"], {}, **arguments)
        assert "asks for Basic credentials" in str(exc.value)
        monkeypatch.setenv("NANOEDGE_REGISTRY_USERNAME", "edge")
        monkeypatch.setenv("NANOEDGE_REGISTRY_PASSWORD", "pa55")
        assert os.path.isdir(lookup.run(["/opt/nanoedge/service"], {}, **arguments)[0])
    finally:
        fake.close()
