# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client side of OSCORE: credentials files, one context per registry, and never a silent
fall-back to plain CoAP."""

from __future__ import annotations

import asyncio
import json
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils import _coap, _oscore
from ansible_collections.nanoedge.core.tests.unit.plugins.module_utils.test_coap import make_profile


def write_context(folder, sender: str = "01", recipient: str = "", id_context: str = "m1"):
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({
        "sender-id_hex": sender, "recipient-id_hex": recipient, "secret_hex": "11" * 32, "salt_hex": "",
        "id-context_ascii": id_context}))
    return folder


def write_credentials(path, entries: t.Dict[str, t.Any]):
    path.write_text(json.dumps(entries))
    return str(path)


class _Context:
    def __init__(self) -> None:
        self.destroyed = 0

    def _destroy(self) -> None:
        self.destroyed += 1


def test_release_oscore_context_unlocks_what_aiocoap_locked():
    secctx = _Context()
    _oscore.release_oscore_context(secctx)
    assert secctx.destroyed == 1
    _oscore.release_oscore_context(object())  # an aiocoap without _destroy: nothing to release


def test_load_oscore_context_names_the_folder(tmp_path):
    with pytest.raises(_oscore.OscoreError) as info:
        _oscore.load_oscore_context(str(tmp_path / "missing"))
    assert str(info.value).startswith("OSCORE context %s: " % (tmp_path / "missing"))


def test_credentials_map_each_registry_to_its_context(tmp_path):
    write_context(tmp_path / "w1" / "m1", id_context="m1")
    write_context(tmp_path / "w1" / "m2", id_context="m2")
    path = write_credentials(tmp_path / "w1.json", {
        "coap://10.0.0.1/*": {"oscore": {"basedir": "w1/m1/"}},
        "coap://[fd00::2]:5700/*": {"oscore": {"basedir": str(tmp_path / "w1" / "m2") + "/"}},
    })
    assert _oscore.read_credentials(path) == {
        "10.0.0.1:5683": str(tmp_path / "w1" / "m1") + "/",
        "[fd00::2]:5700": str(tmp_path / "w1" / "m2") + "/",
    }
    credentials = _oscore.Credentials.load(credentials=path)
    try:
        assert credentials.context_for("10.0.0.1:5683").id_context == b"m1"
        assert credentials.context_for("[fd00::2]:5700").id_context == b"m2"
        with pytest.raises(_oscore.OscoreError) as info:
            credentials.context_for("10.0.0.3:5683")
        assert str(info.value) == "OSCORE credentials %s name no security context for coap://10.0.0.3:5683" % path
    finally:
        credentials.release()
    # released: a second program may load them now
    _oscore.Credentials.load(credentials=path).release()


@pytest.mark.parametrize("entries, message", [
    ([], "must be a JSON object"),
    ({"coap://m1": {"oscore": {"basedir": "x/"}}}, "key 'coap://m1' must be coap://host[:port]/*"),
    ({"http://m1/*": {"oscore": {"basedir": "x/"}}}, "registry 'http://m1': scheme must be coap://, got 'http://'"),
    ({"coap://m1/*": {"oscore": {}}}, "'coap://m1/*' must be {\"oscore\": {\"basedir\": FOLDER}}"),
    ({"coap://m1/*": {"dtls": {"psk": "x"}}}, "'coap://m1/*' must be {\"oscore\": {\"basedir\": FOLDER}}"),
    ({"coap://m1/*": "any"}, "'coap://m1/*' must be {\"oscore\": {\"basedir\": FOLDER}}"),
])
def test_bad_credentials_are_named(tmp_path, entries, message):
    path = write_credentials(tmp_path / "c.json", entries)
    with pytest.raises(_oscore.OscoreError) as info:
        _oscore.read_credentials(path)
    assert str(info.value) == "credentials %s: %s" % (path, message)


def test_a_context_that_does_not_load_releases_the_others(tmp_path):
    write_context(tmp_path / "a")
    path = write_credentials(tmp_path / "c.json", {"coap://m1/*": {"oscore": {"basedir": "a/"}},
                                                   "coap://m2/*": {"oscore": {"basedir": "missing/"}}})
    with pytest.raises(_oscore.OscoreError, match="^OSCORE context .*missing/: "):
        _oscore.Credentials.load(credentials=path)
    _oscore.load_oscore_context(str(tmp_path / "a"))._destroy()  # not left locked


def test_either_credentials_or_one_context(tmp_path):
    with pytest.raises(_oscore.OscoreError, match="^give either OSCORE credentials"):
        _oscore.Credentials.load(credentials="c.json", context="ctx")
    assert _oscore.Credentials.load() is None


@pytest.fixture()
def no_oscore(monkeypatch):
    """aiocoap as on a node without its oscore extra."""
    from aiocoap import defaults
    monkeypatch.setattr(defaults, "oscore_missing_modules", lambda: ["cbor2", "filelock"])


def test_a_missing_oscore_library_is_an_error_that_names_it(no_oscore, tmp_path):
    write_context(tmp_path / "a")
    assert _oscore.oscore_missing() == ["cbor2", "filelock"]
    with pytest.raises(_oscore.OscoreError) as info:
        _oscore.load_oscore_context(str(tmp_path / "a"))
    assert str(info.value).startswith("OSCORE is configured but cbor2, filelock cannot be imported by ")
    assert str(info.value).endswith("install aiocoap's oscore extra (pip install 'aiocoap[oscore]'); "
                                    "requests are never sent unprotected instead")


def test_a_report_without_the_oscore_library_sends_nothing(no_oscore, tmp_path, monkeypatch):
    write_context(tmp_path / "a")
    path = write_credentials(tmp_path / "c.json", {"coap://127.0.0.1:9/*": {"oscore": {"basedir": "a/"}}})
    sent = []
    monkeypatch.setattr(_coap, "_Client", lambda *args: sent.append(args))
    profile = make_profile("w1")
    with pytest.raises(_coap.CoapError, match="^OSCORE is configured but cbor2, filelock cannot be imported"):
        _coap.run_report(profile, ["coap://127.0.0.1:9"], _coap.ReportSettings(oscore_credentials=path))
    with pytest.raises(_coap.CoapError, match="^OSCORE is configured but cbor2, filelock cannot be imported"):
        _coap.run_fetch_profiles("coap://127.0.0.1:9", oscore_credentials=path)
    assert sent == []


def test_a_protected_client_refuses_a_registry_without_a_context(tmp_path):
    write_context(tmp_path / "a")
    path = write_credentials(tmp_path / "c.json", {"coap://127.0.0.1:9/*": {"oscore": {"basedir": "a/"}}})

    credentials = _oscore.Credentials.load(credentials=path)
    try:
        registry = _coap.parse_registry("coap://127.0.0.1:10")

        async def attempt() -> None:
            async with _coap._Client(registry, credentials):
                pass

        with pytest.raises(_coap.PermanentError) as info:
            asyncio.run(attempt())
        assert str(info.value) == ("coap://127.0.0.1:10: OSCORE credentials %s name no security context for "
                                   "coap://127.0.0.1:10" % path)
    finally:
        credentials.release()
