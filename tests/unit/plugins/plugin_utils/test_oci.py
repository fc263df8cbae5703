# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import hashlib
import io
import json
import socket
import threading

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import (
    MANIFEST_ACCEPT,
    RegistryClient,
    parse_registry_url,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import (
    DigestCache,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import (
    ImageError,
    RegistryError,
    Response,
    next_link,
    parse_challenge,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_select import (
    Selection,
    glob_to_regex,
    highest_semver,
    pick_tag,
    resolve_repositories,
    run_bounded,
    split_reference,
    validate_repository,
    validate_tag,
)
from ansible_collections.nanoedge.core.tests.unit.plugins.plugin_utils.oci_fake import (
    DOCKER_LAYER,
    FakeRegistry,
    make_layer,
)

REQ = {"io.nanoedge.requirements": '{"cpu": 1}'}


@pytest.fixture
def fake():
    registry = FakeRegistry()
    yield registry
    registry.close()


@pytest.mark.parametrize("header, expected", [
    ('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
     ("bearer", {"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull"})),
    ('Basic realm="Registry Realm"', ("basic", {"realm": "Registry Realm"})),
    ('Bearer realm=https://x/token, service=reg', ("bearer", {"realm": "https://x/token", "service": "reg"})),
    ('Bearer realm="a\\"b"', ("bearer", {"realm": 'a"b'})),
    ("", ("", {})),
])
def test_parse_challenge(header, expected):
    assert parse_challenge(header) == expected


@pytest.mark.parametrize("link, expected", [
    ('</v2/_catalog?last=b&n=2>; rel="next"', "http://r:5000/v2/_catalog?last=b&n=2"),
    ('<http://other/v2/_catalog?last=b>; rel=next', "http://other/v2/_catalog?last=b"),
    ("", None),
    ('</v2/x>; rel="prev"', None),
])
def test_next_link(link, expected):
    response = Response(200, {"link": link} if link else {}, b"", "http://r:5000/v2/_catalog?n=2")
    assert next_link(response) == expected


@pytest.mark.parametrize("registry, expected", [
    ("http://127.0.0.1:5000", ("http://127.0.0.1:5000", "127.0.0.1:5000")),
    ("registry.example/", ("https://registry.example", "registry.example")),
    ("https://r.example:8443", ("https://r.example:8443", "r.example:8443")),
])
def test_parse_registry_url(registry, expected):
    assert parse_registry_url(registry) == expected


@pytest.mark.parametrize("registry, message", [
    ("", "the registry address is empty"),
    ("ftp://x", "'ftp://x' is not a registry address (expected http(s)://host[:port])"),
    ("http://x/path", "'http://x/path' is not a registry address (expected http(s)://host[:port])"),
])
def test_parse_registry_url_errors(registry, message):
    with pytest.raises(ValueError) as exc:
        parse_registry_url(registry)
    assert str(exc.value) == message


@pytest.mark.parametrize("pattern, matches, misses", [
    ("nanoedge/*", ["nanoedge/spo2", "nanoedge/hrv"], ["nanoedge/a/b", "other/spo2", "nanoedge"]),
    ("nanoedge/**", ["nanoedge/spo2", "nanoedge/a/b"], ["nanoedgex/a"]),
    ("**", ["a", "a/b/c"], []),
    ("nano?dge/s*", ["nanoedge/spo2"], ["nanoedge/hrv"]),
    ("n/[hs]*", ["n/hrv", "n/spo2"], ["n/bot"]),
    ("n/[!h]*", ["n/spo2"], ["n/hrv"]),
    ("n/a.b", ["n/a.b"], ["n/axb", "n/a.b\n"]),
])
def test_glob(pattern, matches, misses):
    regex = glob_to_regex(pattern)
    assert [m for m in matches if regex.fullmatch(m)] == matches
    assert [m for m in misses if regex.fullmatch(m)] == []


@pytest.mark.parametrize("entry, expected", [
    ("nanoedge/spo2", ("nanoedge/spo2", None)),
    ("nanoedge/spo2:1.0", ("nanoedge/spo2", "1.0")),
    ("nanoedge/*:v2", ("nanoedge/*", "v2")),
])
def test_split_reference(entry, expected):
    assert split_reference(entry) == expected


@pytest.mark.parametrize("tags, prerelease, expected", [
    (["1.0.0", "1.10.0", "1.9.3", "latest"], False, "1.10.0"),
    (["v1.2.3", "1.2.3"], False, "1.2.3"),
    (["1.0.0", "2.0.0-rc.1"], False, "1.0.0"),
    (["1.0.0", "2.0.0-rc.1"], True, "2.0.0-rc.1"),
    (["2.0.0-rc.1", "2.0.0-rc.2", "2.0.0-beta", "2.0.0"], True, "2.0.0"),
    (["2.0.0-rc.2", "2.0.0-rc.10"], True, "2.0.0-rc.10"),
    (["1.0.0+build.5", "0.9.0"], False, "1.0.0+build.5"),
    (["latest", "1.0", "01.2.3"], False, None),
    (["1.0.0", "9.0.0\n"], False, "1.0.0"),
])
def test_highest_semver(tags, prerelease, expected):
    assert highest_semver(tags, prerelease) == expected


def test_run_bounded_keeps_order_and_limits_concurrency():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    # the first three only return once all three are in flight together: proves the pool
    # reaches its bound, while the peak proves it never goes beyond it
    all_three = threading.Barrier(3, timeout=10)

    def work(item):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        if item < 3:
            all_three.wait()
        with lock:
            state["now"] -= 1
        if item == 3:
            raise ValueError("three")
        return item * 10

    results = run_bounded(work, list(range(8)), 3)
    assert [r if not isinstance(r, Exception) else str(r) for r in results] == [0, 10, 20, "three", 40, 50, 60, 70]
    assert state["peak"] == 3


def test_image_with_labels_and_platform(fake):
    digest = fake.add_image("nanoedge/spo2", "latest", REQ, platform=("linux", "arm", "v7"))
    client = RegistryClient(fake.url)
    meta = client.inspect("nanoedge/spo2", "latest")
    assert meta.digest == digest
    assert meta.reference == "%s/nanoedge/spo2:latest" % fake.host
    assert meta.platform_names == ["linux/arm/v7"]
    assert meta.content.platforms[0].labels == REQ


def test_oci_index_reads_each_platform_and_skips_attestations(fake):
    digest = fake.add_index("nanoedge/hrv", "1.0", [
        (("linux", "arm", "v7"), {"io.nanoedge.requirements": '{"cpu": 1}'}),
        (("linux", "arm64", None), {"io.nanoedge.requirements": '{"cpu": 2}'}),
    ], annotations={"org.opencontainers.image.description": "hello"}, attestation=True)
    meta = RegistryClient(fake.url).inspect("nanoedge/hrv", "1.0")
    assert meta.digest == digest
    assert meta.platform_names == ["linux/arm/v7", "linux/arm64"]
    assert [p.labels["io.nanoedge.requirements"] for p in meta.content.platforms] == ['{"cpu": 1}', '{"cpu": 2}']
    assert meta.content.annotations == {"org.opencontainers.image.description": "hello"}
    assert all(p.manifest_digest.startswith("sha256:") for p in meta.content.platforms)


def test_docker_manifest_list(fake):
    fake.add_index("n/x", "latest", [(("linux", "amd64", None), REQ)], oci=False)
    assert RegistryClient(fake.url).inspect("n/x", "latest").platform_names == ["linux/amd64"]


def test_every_manifest_type_is_accepted_in_one_request():
    assert MANIFEST_ACCEPT.split(", ") == [
        "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json"]


def test_catalog_pagination(fake):
    for i in range(7):
        fake.add_image("p/r%02d" % i, "latest", REQ)
    client = RegistryClient(fake.url)
    assert client.catalog(page_size=3) == ["p/r%02d" % i for i in range(7)]
    assert [p for m, p in fake.requests if p == "/v2/_catalog"] == ["/v2/_catalog"] * 3


def test_resolve_repositories_globs_explicit_and_pinned(fake):
    for repo in ("a/one", "a/two", "a/deep/three", "b/one"):
        fake.add_image(repo, "latest", REQ)
    client = RegistryClient(fake.url)
    selection = Selection(repositories=["a/*", "b/one:1.0", "a/two:2.0"])
    assert resolve_repositories(client, selection) == [("a/one", None), ("a/two", "2.0"), ("b/one", "1.0")]
    assert resolve_repositories(client, Selection()) == [
        ("a/deep/three", None), ("a/one", None), ("a/two", None), ("b/one", None)]


def test_explicit_repositories_do_not_read_the_catalog(fake):
    fake.catalog_enabled = False
    client = RegistryClient(fake.url)
    assert resolve_repositories(client, Selection(repositories=["x/y"])) == [("x/y", None)]
    with pytest.raises(RegistryError) as exc:
        resolve_repositories(client, Selection(repositories=["x/*"]))
    assert str(exc.value) == ("registry %s: the catalog API is not available (HTTP 404); "
                              "name the repositories explicitly instead of with globs" % fake.host)


@pytest.mark.parametrize("entry, message", [
    ("Bad/Name", "'Bad/Name' is not a valid repository name"),
    ("a/b:-x", "'-x' is not a valid tag"),
])
def test_resolve_repositories_rejects_bad_names(fake, entry, message):
    with pytest.raises(ValueError) as exc:
        resolve_repositories(RegistryClient(fake.url), Selection(repositories=[entry]))
    assert str(exc.value) == message


@pytest.mark.parametrize("check, value, message", [
    (validate_repository, "a/b\n", "'a/b\\n' is not a valid repository name"),
    (validate_tag, "v1\n", "'v1\\n' is not a valid tag"),
])
def test_names_with_a_trailing_newline_are_refused(check, value, message):
    with pytest.raises(ValueError) as exc:
        check(value)
    assert str(exc.value) == message


def test_pick_tag_policies(fake):
    for tag in ("0.9.0", "1.2.0", "1.10.1", "latest", "2.0.0-rc.1"):
        fake.add_image("n/svc", tag, REQ)
    client = RegistryClient(fake.url)
    assert pick_tag(client, "n/svc", None, Selection()) == "latest"
    assert pick_tag(client, "n/svc", None, Selection(tag_policy="fixed", tag="0.9.0")) == "0.9.0"
    assert pick_tag(client, "n/svc", None, Selection(tag_policy="semver")) == "1.10.1"
    assert pick_tag(client, "n/svc", None, Selection(tag_policy="semver", include_prerelease=True)) == "2.0.0-rc.1"
    assert pick_tag(client, "n/svc", "pinned", Selection(tag_policy="semver")) == "pinned"


def test_semver_without_version_tags(fake):
    fake.add_image("n/svc", "latest", REQ)
    with pytest.raises(ImageError) as exc:
        pick_tag(RegistryClient(fake.url), "n/svc", None, Selection(tag_policy="semver"))
    assert str(exc.value) == "image %s/n/svc: no semantic-version tag among 1 tag(s) (latest)" % fake.host


def test_missing_manifest_and_repository(fake):
    fake.add_image("n/svc", "latest", REQ)
    client = RegistryClient(fake.url)
    with pytest.raises(ImageError) as exc:
        client.inspect("n/svc", "9.9")
    assert str(exc.value) == ("image %s/n/svc:9.9: manifest '9.9' not found (HTTP 404 Not Found, "
                              "MANIFEST_UNKNOWN: manifest unknown)" % fake.host)
    with pytest.raises(ImageError) as exc:
        client.tags("n/none", "%s/n/none" % fake.host)
    assert str(exc.value) == ("image %s/n/none: repository not found (HTTP 404 Not Found, "
                              "NAME_UNKNOWN: repository name not known to registry)" % fake.host)


def test_tampered_content_is_rejected(fake):
    digest = fake.add_image("n/svc", "latest", REQ)
    fake.tamper.add(digest)
    with pytest.raises(ImageError) as exc:
        RegistryClient(fake.url).inspect("n/svc", "latest")
    assert str(exc.value).startswith("image %s/n/svc:latest: manifest 'latest' does not match its digest (expected %s, got sha256:"
                                     % (fake.host, digest))


def test_tampered_config_blob_is_rejected(fake):
    fake.add_image("n/svc", "latest", REQ)
    config_digest = list(fake.blobs)[0]
    fake.tamper.add(config_digest)
    with pytest.raises(ImageError) as exc:
        RegistryClient(fake.url).inspect("n/svc", "latest")
    assert str(exc.value).startswith("image %s/n/svc:latest: config blob %s does not match its digest"
                                     % (fake.host, config_digest))


def test_config_that_is_not_json(fake):
    fake.add_image("n/svc", "latest", None, raw_config=b"not json")
    with pytest.raises(ImageError) as exc:
        RegistryClient(fake.url).inspect("n/svc", "latest")
    assert "config blob sha256:" in str(exc.value)
    assert "is not usable: not JSON" in str(exc.value)


def test_blob_redirect_is_followed(fake):
    fake.redirect_blobs = True
    fake.add_image("n/svc", "latest", REQ)
    meta = RegistryClient(fake.url).inspect("n/svc", "latest")
    assert meta.content.platforms[0].labels == REQ
    assert any(p.startswith("/storage/") for _m, p in fake.requests)


def test_exposed_ports_are_read(fake):
    fake.add_image("n/svc", "latest", REQ, exposed=["5701/udp", "80/tcp"])
    assert RegistryClient(fake.url).inspect("n/svc", "latest").content.platforms[0].exposed_ports == (
        "5701/udp", "80/tcp")


def _descriptor(data: bytes) -> dict:
    return {"mediaType": DOCKER_LAYER, "size": len(data), "digest": "sha256:" + hashlib.sha256(data).hexdigest()}


@pytest.mark.parametrize("redirect", [False, True])
def test_blob_to_file(fake, redirect):
    fake.redirect_blobs = redirect
    data = make_layer([("opt/x", "file", b"x" * 5000)])
    fake.add_blob(data)
    target = io.BytesIO()
    assert RegistryClient(fake.url).blob_to_file("n/svc", _descriptor(data), "i", target, 1 << 20) == \
        _descriptor(data)["digest"]
    assert target.getvalue() == data and target.tell() == 0


def _blob_error(fake, descriptor, max_bytes=1 << 20):
    with pytest.raises((ImageError, RegistryError)) as exc:
        RegistryClient(fake.url).blob_to_file("n/svc", descriptor, "IMG", io.BytesIO(), max_bytes)
    return exc.type, str(exc.value)


def test_blob_with_content_that_does_not_match_its_digest(fake):
    data, other = b"a" * 100, b"b" * 100
    digest = _descriptor(data)["digest"]
    fake.blobs[digest] = other  # same size, other bytes
    assert _blob_error(fake, _descriptor(data)) == (
        ImageError, "image IMG: blob %s does not match its digest (got %s)" % (digest, _descriptor(other)["digest"]))


def test_blob_shorter_than_its_descriptor(fake):
    data = b"a" * 100
    digest = _descriptor(data)["digest"]
    fake.blobs[digest] = data[:60]
    assert _blob_error(fake, _descriptor(data)) == (
        ImageError, "image IMG: blob %s is 60 bytes, the manifest says 100" % digest)


def test_blob_longer_than_its_descriptor_is_cut_off(fake):
    data = b"a" * 100
    digest = fake.add_blob(data)
    fake.padded.add(digest)
    assert _blob_error(fake, _descriptor(data)) == (
        RegistryError, "registry %s, repository n/svc: GET blob %s failed: response larger than 100 bytes"
        % (fake.host, digest))


@pytest.mark.parametrize("change, message", [
    ({"size": 5000}, "layer {digest} is 5000 bytes, more than the limit of 1000"),
    ({"size": -1}, "layer {digest} has no valid size (-1)"),
    ({"size": True}, "layer {digest} has no valid size (True)"),
    ({"digest": "md5:00"}, "layer digest 'md5:00' is not valid"),
    ({"digest": "sha256:" + "0" * 64}, "blob sha256:" + "0" * 64 + " not found (HTTP 404)"),
    # the registry's error document is longer than the blob would have been
    ({"digest": "sha256:" + "0" * 64, "size": 3}, "blob sha256:" + "0" * 64 + " not found (HTTP 404)"),
])
def test_blob_descriptor_errors(fake, change, message):
    data = b"a" * 100
    digest = fake.add_blob(data)
    descriptor = dict(_descriptor(data), **change)
    assert _blob_error(fake, descriptor, max_bytes=1000) == (ImageError, "image IMG: " + message.format(digest=digest))


def test_platform_manifest_of_an_index(fake):
    digest = fake.add_index("n/x", "latest", [(("linux", "amd64", None), REQ), (("linux", "arm64", None), REQ)])
    client = RegistryClient(fake.url)
    assert client.platform_manifest("n/x", digest, "i")[0] == "linux/amd64"
    platform, child, manifest = client.platform_manifest("n/x", digest, "i", "linux/arm64")
    assert platform == "linux/arm64" and child != digest and manifest["layers"] == []
    with pytest.raises(ImageError) as exc:
        client.platform_manifest("n/x", digest, "i", "linux/riscv64")
    assert str(exc.value) == "image i: index has no image for platform linux/riscv64 (it has: linux/amd64, linux/arm64)"


def test_platform_manifest_of_an_image(fake):
    digest = fake.add_image("n/svc", "latest", REQ)
    assert RegistryClient(fake.url).platform_manifest("n/svc", digest, "i")[:2] == ("", digest)


def test_basic_auth():
    fake = FakeRegistry(auth="basic", users={"alice": "s3cret"})
    try:
        fake.add_image("n/svc", "latest", REQ)
        assert RegistryClient(fake.url, "alice", "s3cret").inspect("n/svc", "latest").content.platforms[0].labels == REQ
        with pytest.raises(RegistryError) as exc:
            RegistryClient(fake.url).inspect("n/svc", "latest")
        assert str(exc.value) == ("registry %s, repository n/svc: GET manifest 'latest': 401 Unauthorized: the registry "
                                  "asks for Basic credentials and none were given (username, password)" % fake.host)
        with pytest.raises(RegistryError) as exc:
            RegistryClient(fake.url, "alice", "wrong").inspect("n/svc", "latest")
        assert str(exc.value) == ("registry %s, repository n/svc: GET manifest 'latest': 401 Unauthorized: the "
                                  "registry rejected the credentials of user 'alice'" % fake.host)
        assert "wrong" not in str(exc.value)
    finally:
        fake.close()


def test_bearer_token_flow_caches_tokens_per_scope():
    fake = FakeRegistry(auth="bearer", users={"bob": "pw"})
    try:
        for repo in ("n/a", "n/b"):
            fake.add_image(repo, "latest", REQ)
        client = RegistryClient(fake.url, "bob", "pw")
        assert client.catalog() == ["n/a", "n/b"]
        for _round in range(2):
            for repo in ("n/a", "n/b"):
                assert client.inspect(repo, "latest").content.platforms[0].labels == REQ
        scopes = [q["scope"] for q in fake.token_requests]
        assert scopes == [["registry:catalog:*"], ["repository:n/a:pull"], ["repository:n/b:pull"]]
        assert fake.token_requests[0]["service"] == ["fake-registry"]
        assert client.token_requests == 3
        with pytest.raises(RegistryError) as exc:
            RegistryClient(fake.url, "bob", "nope").inspect("n/a", "latest")
        assert str(exc.value) == ("registry %s, repository n/a: token service %s/token refused the credentials "
                                  "of user 'bob' (HTTP 401)" % (fake.host, fake.url))
    finally:
        fake.close()


def test_anonymous_bearer_token_flow():
    fake = FakeRegistry(auth="bearer")
    try:
        fake.add_image("n/a", "latest", REQ)
        assert RegistryClient(fake.url).inspect("n/a", "latest").platform_names == ["linux/amd64"]
        assert "account" not in fake.token_requests[0]
    finally:
        fake.close()


def test_timeout_names_registry_and_repository(fake):
    fake.add_image("n/svc", "latest", REQ)
    fake.delay = 1.0
    with pytest.raises(RegistryError) as exc:
        RegistryClient(fake.url, timeout=0.2).inspect("n/svc", "latest")
    assert str(exc.value) == "registry %s, repository n/svc: GET manifest 'latest' timed out after 0.2s" % fake.host


def test_connection_refused_names_registry():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RegistryError) as exc:
        RegistryClient("http://127.0.0.1:%d" % port).catalog()
    assert str(exc.value).startswith("registry 127.0.0.1:%d: GET catalog failed: [Errno 111]" % port)


def test_tls_to_plain_http_server_is_a_registry_error(fake):
    with pytest.raises(RegistryError) as exc:
        RegistryClient("https://%s" % fake.host, timeout=2).check()
    assert str(exc.value).startswith("registry %s: GET /v2/: TLS error:" % fake.host)


def test_cache_warm_path_only_heads_manifests(fake, tmp_path):
    fake.add_index("n/multi", "latest", [(("linux", "arm64", None), REQ), (("linux", "arm", "v7"), REQ)])
    fake.add_image("n/single", "latest", REQ)
    path = str(tmp_path / "cache.json")
    cold = DigestCache(path)
    client = RegistryClient(fake.url)
    first = [client.inspect(r, "latest", cold) for r in ("n/multi", "n/single")]
    cold.save()
    fake.requests.clear()
    warm = DigestCache(path)
    assert len(warm) == 2
    second = [RegistryClient(fake.url).inspect(r, "latest", warm) for r in ("n/multi", "n/single")]
    assert second == first
    assert fake.requests == [("HEAD", "/v2/n/multi/manifests/latest"), ("HEAD", "/v2/n/single/manifests/latest")]


def test_changed_image_is_read_again(fake, tmp_path):
    fake.add_image("n/svc", "latest", REQ)
    cache = DigestCache()
    client = RegistryClient(fake.url)
    client.inspect("n/svc", "latest", cache)
    fake.add_image("n/svc", "latest", {"io.nanoedge.requirements": '{"cpu": 4}'})
    meta = client.inspect("n/svc", "latest", cache)
    assert meta.content.platforms[0].labels == {"io.nanoedge.requirements": '{"cpu": 4}'}
    assert len(cache) == 2


def test_without_digest_header_the_manifest_is_fetched(fake):
    fake.send_digest_header = False
    digest = fake.add_image("n/svc", "latest", REQ)
    cache = DigestCache()
    client = RegistryClient(fake.url)
    assert client.inspect("n/svc", "latest", cache).digest == digest
    assert client.inspect("n/svc", "latest", cache).digest == digest


@pytest.mark.parametrize("content", [b"not json", b"[]", json.dumps({"format": 99}).encode(),
                                     json.dumps({"format": 1, "entries": {"sha256:x": {"bad": 1}}}).encode()])
def test_unusable_cache_file_is_ignored(tmp_path, content):
    path = tmp_path / "cache.json"
    path.write_bytes(content)
    assert len(DigestCache(str(path))) == 0


def _self_signed(tmp_path):
    import datetime  # pylint: disable=import-outside-toplevel
    import ipaddress  # pylint: disable=import-outside-toplevel

    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_tls_verification_is_on_by_default_and_takes_a_ca(tmp_path):
    cert, key = _self_signed(tmp_path)
    fake = FakeRegistry(tls=(cert, key))
    try:
        fake.add_image("n/svc", "latest", REQ)
        with pytest.raises(RegistryError) as exc:
            RegistryClient(fake.url).inspect("n/svc", "latest")
        assert str(exc.value).startswith("registry %s, repository n/svc: GET manifest 'latest': TLS error: "
                                         "[SSL: CERTIFICATE_VERIFY_FAILED]" % fake.host)
        assert RegistryClient(fake.url, ca_path=cert).inspect("n/svc", "latest").platform_names == ["linux/amd64"]
        assert RegistryClient(fake.url, validate_certs=False).inspect("n/svc", "latest").content.platforms[0].labels == REQ
    finally:
        fake.close()
