# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service discovery against real registries (CNCF distribution, Debian's
``docker-registry``): the shared one on 127.0.0.1:5000 with images built by
Docker, and private instances started here with htpasswd (Basic) auth, with
token auth behind a small token server, and with > 100 repositories for
catalog pagination. Each error case asserts the exact message.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import typing as t
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import (
    RegistryClient,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_cache import (
    DigestCache,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import (
    MAX_DOCUMENT_BYTES,
    HttpTransport,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import (
    DiscoveryError,
    DiscoveryOptions,
    discover,
)

from conftest import read_json_marker  # pylint: disable=import-error

LABEL = "io.nanoedge.requirements"
NONE = {"capabilities": [], "cpu": 0, "memory_mb": 0, "storage_mb": 0, "power": "", "network": "",
        "min_battery_percent": 0}
SPO2 = {"capabilities": ["pom"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "ac", "network": "wifi"}
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
KNOWN_KEYS = "capabilities, cpu, memory_mb, storage_mb, power, network, min_battery_percent"


# --------------------------------------------------------------------------- registry API helpers


def _auth_header(auth: t.Optional[t.Tuple[str, str]]) -> t.Dict[str, str]:
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode()}


class Pusher:
    """Pushes blobs and manifests through the Distribution API (POST + PUT uploads)."""

    def __init__(self, base_url: str, headers: t.Optional[t.Callable[[str], t.Dict[str, str]]] = None) -> None:
        self.base_url = base_url
        self.headers = headers or (lambda repo: {})

    def _call(self, method: str, url: str, repo: str, body: bytes = b"",
              extra: t.Optional[t.Dict[str, str]] = None) -> t.Any:
        headers = dict(self.headers(repo), **(extra or {}))
        request = urllib.request.Request(url, data=body if method != "GET" else None, method=method, headers=headers)
        return urllib.request.urlopen(request, timeout=30)

    def blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with self._call("POST", "%s/v2/%s/blobs/uploads/" % (self.base_url, repo), repo) as response:
            assert response.status == 202
            location = urllib.parse.urljoin(self.base_url, response.headers["Location"])
        sep = "&" if "?" in location else "?"
        with self._call("PUT", "%s%sdigest=%s" % (location, sep, digest), repo, data,
                        {"Content-Type": "application/octet-stream"}) as response:
            assert response.status == 201
        return digest

    def manifest(self, repo: str, ref: str, media_type: str, body: bytes) -> str:
        with self._call("PUT", "%s/v2/%s/manifests/%s" % (self.base_url, repo, ref), repo, body,
                        {"Content-Type": media_type}) as response:
            assert response.status == 201
            return response.headers["Docker-Content-Digest"]

    def image(self, repo: str, ref: str, labels: t.Optional[t.Dict[str, str]],
              platform: t.Tuple[str, str, t.Optional[str]] = ("linux", "amd64", None), oci: bool = False,
              annotations: t.Optional[t.Dict[str, str]] = None) -> t.Tuple[str, int]:
        """A config-only image (no layers): cheap, and all discovery reads."""
        os_name, arch, variant = platform
        config: t.Dict[str, t.Any] = {"architecture": arch, "os": os_name, "config": {"Labels": labels},
                                      "rootfs": {"type": "layers", "diff_ids": []}}
        if variant:
            config["variant"] = variant
        config_bytes = json.dumps(config).encode()
        config_digest = self.blob(repo, config_bytes)
        media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        manifest: t.Dict[str, t.Any] = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci
                       else "application/vnd.docker.container.image.v1+json",
                       "size": len(config_bytes), "digest": config_digest},
            "layers": []}
        if annotations:
            manifest["annotations"] = annotations
        body = json.dumps(manifest).encode()
        return self.manifest(repo, ref, media_type, body), len(body)

    def index(self, repo: str, ref: str,
              platforms: t.Sequence[t.Tuple[t.Tuple[str, str, t.Optional[str]], t.Dict[str, str]]]) -> str:
        entries = []
        for platform, labels in platforms:
            digest, size = self.image(repo, hashlib.sha1(repr(platform).encode()).hexdigest()[:12], labels,
                                      platform=platform, oci=True)
            entry = {"mediaType": OCI_MANIFEST, "digest": digest, "size": size,
                     "platform": {"os": platform[0], "architecture": platform[1]}}
            if platform[2]:
                entry["platform"]["variant"] = platform[2]
            entries.append(entry)
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return self.manifest(repo, ref, OCI_INDEX, body)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, expect: t.Tuple[int, ...], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        if status in expect:
            return
        if time.monotonic() > deadline:
            raise AssertionError("%s did not answer %s within %ss (last: %s)" % (url, expect, timeout, status))
        time.sleep(0.05)


class PrivateRegistry:
    """A ``docker-registry serve`` of its own on a free 127.0.0.1 port, stopped by the fixture."""

    def __init__(self, workdir: Path, auth: t.Optional[t.Dict[str, t.Any]] = None) -> None:
        binary = shutil.which("docker-registry")
        assert binary, "Debian's docker-registry is not installed (tools/prereqs.sh installs it)"
        self.port = _free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.host
        config = {"version": 0.1, "log": {"level": "error"},
                  "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
                  "http": {"addr": self.host}}
        if auth:
            config["auth"] = auth
        config_path = workdir / "config.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        self.log = (workdir / "registry.log").open("wb")
        self.proc = subprocess.Popen([binary, "serve", str(config_path)], stdout=self.log, stderr=subprocess.STDOUT)
        try:
            _wait_for(self.url + "/v2/", (200, 401))
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


# --------------------------------------------------------------------------- shared registry fixtures


@pytest.fixture(scope="module")
def prefix() -> str:
    return "nanoedge-it-%s" % uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def shared(docker, registry, base_image, prefix, tmp_path_factory):
    """Images on the shared registry: two built by Docker, the rest pushed through the API."""
    workdir = tmp_path_factory.mktemp("sp-build")
    (workdir / "Dockerfile").write_text('FROM %s\nCMD ["python3", "-c", "print(1)"]\n' % base_image)
    built = {
        "spo2": {LABEL: json.dumps(SPO2), "io.nanoedge.service": "spo2"},
        "heart": {LABEL: '{"capabilities": "pom", "memory_mb": 32}', "io.nanoedge.service": "hrv"},
    }
    refs = []
    for name, labels in built.items():
        ref = "%s/%s/%s:1.0" % (registry, prefix, name)
        args = ["build", "-q", "-t", ref]
        for key, value in labels.items():
            args += ["--label", "%s=%s" % (key, value)]
        docker(*args, str(workdir))
        docker("push", ref)
        refs.append(ref)
    # the base image as it is: a real image without any label
    nolabel = "%s/%s/nolabel:1.0" % (registry, prefix)
    docker("tag", base_image, nolabel)
    docker("push", nolabel)
    refs.append(nolabel)

    push = Pusher("http://" + registry)
    bad = {
        "notjson": {LABEL: "{cpu: 1}"},
        "notobject": {LABEL: '["pom"]'},
        "unknownkey": {LABEL: '{"gpu": 1}'},
        "negative": {LABEL: '{"memory_mb": -5}'},
    }
    for name, labels in bad.items():
        push.image("%s/%s" % (prefix, name), "1.0", labels)
    push.index("%s/multi" % prefix, "1.0", [(("linux", "arm", "v7"), {LABEL: '{"capabilities": ["oc"], "cpu": 1}'}),
                                            (("linux", "arm64", None), {LABEL: '{"cpu": 1, "capabilities": ["oc"]}'})])
    push.index("%s/mismatch" % prefix, "1.0", [(("linux", "arm", "v7"), {LABEL: '{"cpu": 1}'}),
                                               (("linux", "arm64", None), {LABEL: '{"cpu": 2}'})])
    push.image("%s/described" % prefix, "1.0", {}, oci=True,
               annotations={"org.opencontainers.image.description": 'Body temperature. {"capabilities": ["bot"]}'})
    for tag in ("0.9.0", "1.10.0", "1.2.0", "latest", "2.0.0-rc.1"):
        push.image("%s/versions" % prefix, tag, {LABEL: json.dumps({"cpu": 1, "storage_mb": int(tag[0]) if tag[0].isdigit() else 0})})
    yield {"registry": registry, "prefix": prefix}
    for ref in refs:
        docker("image", "rm", "-f", ref, check=False)


def _discover(shared, **kwargs):
    kwargs.setdefault("registry", "http://" + shared["registry"])
    kwargs.setdefault("tag", "1.0")
    kwargs.setdefault("tag_policy", "fixed")
    return discover(DiscoveryOptions(**kwargs))


def _error(shared, **kwargs) -> str:
    with pytest.raises(DiscoveryError) as exc:
        _discover(shared, **kwargs)
    return str(exc.value)


# --------------------------------------------------------------------------- shared registry tests


def test_built_images_and_multi_arch_index(shared):
    p, reg = shared["prefix"], shared["registry"]
    result = _discover(shared, repositories=["%s/spo2" % p, "%s/heart" % p, "%s/multi" % p])
    by_name = {s["name"]: s for s in result.services}
    assert list(by_name) == ["hrv", "multi", "spo2"]
    assert by_name["spo2"]["requires"] == dict(NONE, **SPO2)
    assert by_name["spo2"]["image"] == "%s/%s/spo2:1.0" % (reg, p)
    assert by_name["spo2"]["platforms"] == ["linux/amd64"]
    assert by_name["hrv"]["requires"] == dict(NONE, capabilities=["pom"], memory_mb=32)
    assert by_name["multi"]["platforms"] == ["linux/arm/v7", "linux/arm64"]
    assert by_name["multi"]["requires"] == dict(NONE, capabilities=["oc"], cpu=1)
    with urllib.request.urlopen(urllib.request.Request(
            "http://%s/v2/%s/spo2/manifests/1.0" % (reg, p), method="HEAD",
            headers={"Accept": DOCKER_MANIFEST})) as response:
        assert by_name["spo2"]["digest"] == response.headers["Docker-Content-Digest"]


def test_glob_with_on_error_skip_and_warn(shared):
    p = shared["prefix"]
    warnings: t.List[str] = []
    result = discover(DiscoveryOptions(registry="http://" + shared["registry"], repositories=["%s/*" % p],
                                       tag="1.0", tag_policy="fixed", on_error="skip"), warn=warnings.append)
    assert [s["name"] for s in result.services] == ["hrv", "multi", "spo2"]
    assert warnings == []
    result_warn = discover(DiscoveryOptions(registry="http://" + shared["registry"], repositories=["%s/*" % p],
                                            tag="1.0", tag_policy="fixed", on_error="warn"), warn=warnings.append)
    assert [s["name"] for s in result_warn.services] == ["hrv", "multi", "spo2"]
    # described (no label), mismatch, negative, nolabel, notjson, notobject, unknownkey; versions has no 1.0 tag
    assert len(warnings) == 8
    assert all(w.startswith("image %s/%s/" % (shared["registry"], p)) and w.endswith(" (left out)") for w in warnings)


@pytest.mark.parametrize("repo, reason", [
    ("nolabel", "label io.nanoedge.requirements is missing"),
    ("notjson", "label io.nanoedge.requirements is not valid JSON (Expecting property name enclosed in double "
                "quotes: line 1 column 2 (char 1))"),
    ("notobject", "label io.nanoedge.requirements must be a JSON object, got an array"),
    ("unknownkey", "label io.nanoedge.requirements: unknown requirement key(s) 'gpu' (known: %s)" % KNOWN_KEYS),
    ("negative", "label io.nanoedge.requirements: memory_mb=-5: must be >= 0"),
    ("mismatch", 'label io.nanoedge.requirements differs between platforms (linux/arm/v7: {"cpu": 1}; '
                 'linux/arm64: {"cpu": 2})'),
])
def test_bad_images_name_the_image(shared, repo, reason):
    image = "%s/%s/%s:1.0" % (shared["registry"], shared["prefix"], repo)
    assert _error(shared, repositories=["%s/%s" % (shared["prefix"], repo)]) == "image %s: %s" % (image, reason)


def test_missing_manifest_and_missing_repository(shared):
    p, reg = shared["prefix"], shared["registry"]
    assert _error(shared, repositories=["%s/spo2:9.9" % p]) == (
        "image %s/%s/spo2:9.9: manifest '9.9' not found (HTTP 404 Not Found, MANIFEST_UNKNOWN: manifest unknown)"
        % (reg, p))
    assert _error(shared, repositories=["%s/nothere" % p]) == (
        "image %s/%s/nothere:1.0: manifest '1.0' not found (HTTP 404 Not Found, MANIFEST_UNKNOWN: manifest unknown)"
        % (reg, p))
    assert _error(shared, repositories=["%s/nothere" % p], tag_policy="semver") == (
        "image %s/%s/nothere: repository not found (HTTP 404 Not Found, NAME_UNKNOWN: repository name not known "
        "to registry)" % (reg, p))


def test_tag_policies(shared):
    p, reg = shared["prefix"], shared["registry"]
    repo = ["%s/versions" % p]
    assert [s["image"] for s in _discover(shared, repositories=repo, tag_policy="semver").services] == [
        "%s/%s/versions:1.10.0" % (reg, p)]
    assert [s["image"] for s in _discover(shared, repositories=repo, tag_policy="latest").services] == [
        "%s/%s/versions:latest" % (reg, p)]
    pre = _discover(shared, repositories=repo, tag_policy="semver", include_prerelease=True).services
    assert [(s["image"], s["requires"]["storage_mb"]) for s in pre] == [("%s/%s/versions:2.0.0-rc.1" % (reg, p), 2)]


def test_annotation_source(shared):
    p = shared["prefix"]
    services = _discover(shared, repositories=["%s/described" % p], source="annotation").services
    assert services[0]["requires"] == dict(NONE, capabilities=["bot"])
    assert services[0]["name"] == "described"


class CountingTransport(HttpTransport):
    def __init__(self) -> None:
        super().__init__(timeout=10)
        self.seen: t.List[t.Tuple[str, str]] = []

    def request(self, method, url, headers=None, body=None, max_bytes=MAX_DOCUMENT_BYTES, sink=None):
        self.seen.append((method, urllib.parse.urlsplit(url).path))
        return super().request(method, url, headers, body, max_bytes, sink)


def test_warm_cache_reads_only_manifest_digests(shared, tmp_path):
    p = shared["prefix"]
    cache = str(tmp_path / "cache.json")
    repos = ["%s/spo2" % p, "%s/heart" % p, "%s/multi" % p]
    cold = _discover(shared, repositories=repos, cache_path=cache).services
    assert len(json.loads(Path(cache).read_text())["entries"]) == 3
    assert _discover(shared, repositories=repos, cache_path=cache).services == cold

    transport = CountingTransport()
    client = RegistryClient("http://" + shared["registry"], transport=transport)
    warm = DigestCache(cache)
    digests = [client.inspect(repo, "1.0", warm).digest for repo in repos]
    by_image = {s["image"]: s["digest"] for s in cold}
    assert digests == [by_image["%s/%s:1.0" % (shared["registry"], repo)] for repo in repos]
    assert transport.seen == [("HEAD", "/v2/%s/manifests/1.0" % repo) for repo in repos]


def test_timeout_names_registry_and_repository():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections and never answers
        host = "127.0.0.1:%d" % silent.getsockname()[1]
        with pytest.raises(DiscoveryError) as exc:
            discover(DiscoveryOptions(registry="http://" + host, repositories=["nanoedge/spo2"], timeout=0.5))
    assert str(exc.value) == "registry %s, repository nanoedge/spo2: GET manifest 'latest' timed out after 0.5s" % host


def test_playbook_uses_the_lookup(shared, run_playbook):
    p, reg = shared["prefix"], shared["registry"]
    playbook = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Discover
      ansible.builtin.set_fact:
        services: "{{ lookup('nanoedge.core.service_profiles', registry='http://%(reg)s',
                             repositories=['%(p)s/spo2', '%(p)s/multi'], tag_policy='fixed', tag='1.0') }}"
    - name: Show
      ansible.builtin.debug:
        var: services
    - name: A bad image fails the play with the image named
      ansible.builtin.set_fact:
        broken: "{{ lookup('nanoedge.core.service_profiles', '%(p)s/negative:1.0', registry='http://%(reg)s') }}"
      ignore_errors: true
      register: failed_lookup
    - name: Show the error
      ansible.builtin.debug:
        var: failed_lookup.msg
""" % {"reg": reg, "p": p}
    inventory = ("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                 "      ansible_python_interpreter: %s\n" % sys.executable)
    rc, output = run_playbook(playbook, inventory)
    assert rc == 0, output
    services = read_json_marker(output, '"services": ')
    assert [s["name"] for s in services] == ["multi", "spo2"]
    assert services[1]["requires"] == dict(NONE, **SPO2)
    assert services[0]["platforms"] == ["linux/arm/v7", "linux/arm64"]
    message = read_json_marker(output, '"failed_lookup.msg": ')
    assert ("nanoedge.core.service_profiles: image %s/%s/negative:1.0: label io.nanoedge.requirements: "
            "memory_mb=-5: must be >= 0" % (reg, p)) in message


# --------------------------------------------------------------------------- private registries


@pytest.fixture(scope="module")
def paged_registry(tmp_path_factory):
    """A fresh registry with 105 repositories, so the catalog takes two pages of 100."""
    instance = PrivateRegistry(tmp_path_factory.mktemp("sp-paged"))
    try:
        push = Pusher(instance.url)
        for i in range(105):
            push.image("page/svc%03d" % i, "latest", {LABEL: json.dumps({"cpu": 1, "memory_mb": i})})
        yield instance
    finally:
        instance.stop()


def test_catalog_pagination_over_100_repositories(paged_registry):
    result = discover(DiscoveryOptions(registry=paged_registry.url, repositories=["page/*"]))
    assert [s["name"] for s in result.services] == ["svc%03d" % i for i in range(105)]
    assert [s["requires"]["memory_mb"] for s in result.services] == list(range(105))
    small_pages = discover(DiscoveryOptions(registry=paged_registry.url, repositories=["page/svc10*"],
                                            catalog_page_size=7))
    assert [s["name"] for s in small_pages.services] == ["svc%03d" % i for i in range(100, 105)]


def _htpasswd_line(user: str, password: str) -> str:
    tool = shutil.which("htpasswd")
    if tool:
        return subprocess.run([tool, "-Bbn", user, password], check=True, capture_output=True,
                              text=True).stdout.strip()
    try:
        import bcrypt  # pylint: disable=import-outside-toplevel
    except ImportError:
        pytest.fail("need htpasswd (Debian apache2-utils) or python bcrypt for the htpasswd registry")
    return "%s:%s" % (user, bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode())


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sp-basic")
    (workdir / "htpasswd").write_text(_htpasswd_line("edge", "s3cret-pw") + "\n")
    instance = PrivateRegistry(workdir, auth={"htpasswd": {"realm": "nanoedge-test",
                                                           "path": str(workdir / "htpasswd")}})
    try:
        Pusher(instance.url, lambda repo: _auth_header(("edge", "s3cret-pw"))).image(
            "nanoedge/spo2", "latest", {LABEL: json.dumps(SPO2)})
        yield instance
    finally:
        instance.stop()


def test_basic_auth_registry(basic_registry):
    url, host = basic_registry.url, basic_registry.host
    result = discover(DiscoveryOptions(registry=url, repositories=["nanoedge/*"], username="edge",
                                       password="s3cret-pw"))
    assert [(s["name"], s["requires"]) for s in result.services] == [("spo2", dict(NONE, **SPO2))]
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=url, repositories=["nanoedge/spo2"]))
    assert str(exc.value) == ("registry %s, repository nanoedge/spo2: GET manifest 'latest': 401 Unauthorized: the "
                              "registry asks for Basic credentials and none were given (username, password)" % host)
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=url, repositories=["nanoedge/spo2"], username="edge", password="nope",
                                  on_error="skip"))
    assert str(exc.value) == ("registry %s, repository nanoedge/spo2: GET manifest 'latest': 401 Unauthorized: the "
                              "registry rejected the credentials of user 'edge'" % host)


class TokenServer:
    """A Docker token service: checks Basic credentials, signs RS256 JWTs whose
    x5c certificate is the registry's ``rootcertbundle``."""

    def __init__(self, workdir: Path, service: str, issuer: str, users: t.Dict[str, str]) -> None:
        from cryptography import x509  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
        from cryptography.hazmat.primitives.asymmetric import padding, rsa  # pylint: disable=import-outside-toplevel
        from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nanoedge test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.bundle = workdir / "token-root.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.service, self.issuer, self.users = service, issuer, users
        self.issued: t.List[t.Dict[str, t.Any]] = []
        self._sign = lambda data: self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *args: t.Any) -> None:
                pass

            def do_GET(self) -> None:
                status, body = server.answer(self.path, self.headers.get("Authorization", ""))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.realm = "http://127.0.0.1:%d/token" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer(self, path: str, authorization: str) -> t.Tuple[int, t.Dict[str, t.Any]]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        account = None
        if authorization.startswith("Basic "):
            user, _sep, password = base64.b64decode(authorization[6:]).decode().partition(":")
            if self.users.get(user) != password:
                return 401, {"details": "invalid credentials"}
            account = user
        access = []
        for scope in query.get("scope", []):
            kind, name_actions = scope.split(":", 1)
            name, _sep, actions = name_actions.rpartition(":")
            # anonymous callers may pull; only a known user may push or list the catalog
            granted = [a for a in actions.split(",") if account or a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": account or "", "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        self.issued.append({"account": account, "scope": query.get("scope", []), "service": query.get("service")})
        return 200, {"token": self._jwt(claims), "expires_in": 300}

    def _jwt(self, claims: t.Dict[str, t.Any]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = "%s.%s" % (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()))
        return "%s.%s" % (signing_input, b64(self._sign(signing_input.encode())))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sp-token")
    tokens = TokenServer(workdir, service="nanoedge-test-registry", issuer="nanoedge-test-issuer",
                         users={"ci": "t0ken-pw"})
    instance = None
    try:
        instance = PrivateRegistry(workdir, auth={"token": {
            "realm": tokens.realm, "service": tokens.service, "issuer": tokens.issuer,
            "rootcertbundle": str(tokens.bundle)}})

        def bearer(repo: str) -> t.Dict[str, str]:
            status, body = tokens.answer("/token?scope=repository:%s:pull,push" % repo,
                                         _auth_header(("ci", "t0ken-pw"))["Authorization"])
            assert status == 200
            return {"Authorization": "Bearer " + body["token"]}

        push = Pusher(instance.url, bearer)
        push.image("edge/spo2", "latest", {LABEL: json.dumps(SPO2)})
        push.index("edge/oc", "latest", [(("linux", "arm", "v7"), {LABEL: '{"capabilities": ["oc"]}'}),
                                         (("linux", "arm64", None), {LABEL: '{"capabilities": ["oc"]}'})])
        tokens.issued.clear()
        yield instance, tokens
    finally:
        if instance is not None:
            instance.stop()
        tokens.stop()


def test_token_auth_registry(token_registry):
    instance, tokens = token_registry
    # named repositories: anonymous pull tokens are enough
    result = discover(DiscoveryOptions(registry=instance.url, repositories=["edge/spo2", "edge/oc"]))
    assert [(s["name"], s["platforms"]) for s in result.services] == [
        ("oc", ["linux/arm/v7", "linux/arm64"]), ("spo2", ["linux/amd64"])]
    assert sorted(i["scope"][0] for i in tokens.issued) == ["repository:edge/oc:pull", "repository:edge/spo2:pull"]
    assert all(i["service"] == ["nanoedge-test-registry"] and i["account"] is None for i in tokens.issued)

    # globs need the catalog, which this token service grants only to known users
    tokens.issued.clear()
    result = discover(DiscoveryOptions(registry=instance.url, repositories=["edge/*"], username="ci",
                                       password="t0ken-pw"))
    assert [s["name"] for s in result.services] == ["oc", "spo2"]
    assert sorted(i["scope"][0] for i in tokens.issued) == [
        "registry:catalog:*", "repository:edge/oc:pull", "repository:edge/spo2:pull"]
    assert {i["account"] for i in tokens.issued} == {"ci"}


def test_token_auth_errors(token_registry):
    instance, tokens = token_registry
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=instance.url, repositories=["edge/spo2"], username="ci", password="bad"))
    assert str(exc.value) == ("registry %s, repository edge/spo2: token service %s refused the credentials of user "
                              "'ci' (HTTP 401)" % (instance.host, tokens.realm))
    with pytest.raises(DiscoveryError) as exc:
        discover(DiscoveryOptions(registry=instance.url, repositories=["edge/*"]))
    assert str(exc.value) == ("registry %s: GET catalog: 401 Unauthorized: the bearer token does not grant "
                              "registry:catalog:* anonymously (give username and password)" % instance.host)
