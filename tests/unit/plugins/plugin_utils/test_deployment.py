# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from ansible_collections.nanoedge.core.plugins.plugin_utils._deployment import (
    DeploymentError,
    check_spec,
    deployments,
    image_platform,
    image_reference,
    split_image,
    tag_reference,
)
from ansible_collections.nanoedge.core.plugins.plugin_utils._service_description import normalize_description

ROOT = pathlib.Path(__file__).resolve().parents[4]
DIGEST = "sha256:" + "ab" * 32
ADDRESSES = {"w1": "172.30.0.21", "w2": "172.30.0.22", "w3": "172.30.0.23", "w4": "172.30.0.24",
             "w5": "172.30.0.25"}
PLAN = {"strategy": "first_fit",
        "placements": {"alert": "w2", "bot": "w1", "display": "w5", "hr": "w4", "hrv": "w4", "oc": "w3", "spo2": "w4"},
        "by_node": {"w1": ["bot"], "w2": ["alert"], "w3": ["oc"], "w4": ["hr", "hrv", "spo2"], "w5": ["display"]},
        "unplaced": [], "remaining": {}}
# each producer's state folder (its readings' history), on the node so that it outlives the container
STATE = {"spo2": {"type": "bind", "source": "/var/lib/nanoedge/spo2", "target": "/var/lib/nanoedge/spo2",
                  "read_only": False},
         "bot": {"type": "bind", "source": "/var/lib/nanoedge/bot", "target": "/var/lib/nanoedge/bot",
                 "read_only": False}}


def specs() -> t.Dict[str, t.Any]:
    """The example nanoservices' own service.json files: the descriptions users write."""
    return {path.parent.name: json.loads(path.read_text())
            for path in sorted((ROOT / "nanoservices").glob("*/service.json"))}


def services() -> t.List[t.Dict[str, t.Any]]:
    """The profiles step 3 returns for the example services' images: each with its whole description."""
    requires = {"spo2": {"capabilities": ["pom"], "cpu": 0.5, "memory_mb": 64},
                "alert": {"power": "ac", "cpu": 0.25, "memory_mb": 48}}
    described = specs()
    return [{"name": name, "image": "127.0.0.1:5000/nanoedge/%s:latest" % name, "digest": DIGEST,
             "requires": requires.get(name, {}), "registry": "http://127.0.0.1:5000",
             "description": normalize_description(described[name])} for name in PLAN["placements"]]


def labelled_the_older_way() -> t.List[t.Dict[str, t.Any]]:
    """Profiles of images with only the requirements and service labels: what their labels and EXPOSE say."""
    ports = {name: spec["port"] for name, spec in specs().items()}
    return [dict(profile, description=normalize_description({"name": profile["name"], "requirements": {},
                                                             "version": "1.0.0", "port": ports[profile["name"]]}))
            for profile in services()]


@pytest.mark.parametrize("image, pull, expected", [
    ("127.0.0.1:5000/nanoedge/spo2:1.0.0", "172.30.0.1:5000", "172.30.0.1:5000/nanoedge/spo2@" + DIGEST),
    ("127.0.0.1:5000/nanoedge/spo2:1.0.0", "", "127.0.0.1:5000/nanoedge/spo2@" + DIGEST),
    ("127.0.0.1:5000/nanoedge/spo2", "http://10.0.0.1:5000/", "10.0.0.1:5000/nanoedge/spo2@" + DIGEST),
    ("nanoedge/spo2:1.0", "", "nanoedge/spo2@" + DIGEST),
    ("nanoedge/spo2:1.0", "registry.lan", "registry.lan/nanoedge/spo2@" + DIGEST),
    ("localhost/spo2@sha256:" + "00" * 32, "", "localhost/spo2@" + DIGEST),
    ("registry.example:443/a/b/c:tag", "10.0.0.1:5000", "10.0.0.1:5000/a/b/c@" + DIGEST),
])
def test_image_reference(image: str, pull: str, expected: str) -> None:
    assert image_reference(image, DIGEST, pull) == expected


def test_spo2_container_on_w4() -> None:
    result = deployments(PLAN, services(), "w4", addresses=ADDRESSES, pull_registry="172.30.0.1:5000",
                         path_types={"/dev/ttyUSB0": {"exists": True, "ischr": True}})
    assert [d["name"] for d in result] == ["hr", "hrv", "spo2"]
    spo2 = result[2]
    assert spo2["image"] == "172.30.0.1:5000/nanoedge/spo2@" + DIGEST
    assert spo2["container_name"] == "nanoedge-svc-spo2"
    assert spo2["unit_name"] == "nanoedge-svc-spo2.service"
    assert spo2["env"] == {"NANOEDGE_POM_DEVICE": "/dev/ttyUSB0", "NANOEDGE_PORT": "5701",
                           "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/spo2"}
    assert spo2["devices"] == ["/dev/ttyUSB0:/dev/ttyUSB0:r"]
    assert spo2["mounts"] == [STATE["spo2"]]
    assert spo2["cpus"] == 0.5 and spo2["memory"] == "64M"
    assert spo2["cpu_quota"] == "50%" and spo2["memory_max"] == "64M"
    assert spo2["labels"] == {
        "io.nanoedge.service": "spo2", "io.nanoedge.node": "w4", "io.nanoedge.digest": DIGEST,
        "io.nanoedge.image": "172.30.0.1:5000/nanoedge/spo2:latest",
        "io.nanoedge.requirements": '{"capabilities":["pom"],"cpu":0.5,"memory_mb":64}',
        "io.nanoedge.uri": "coap://172.30.0.24:5701/spo2",
        "io.nanoedge.spec": "sha256:5df2def1d9dda56dbf305afc54de68646b4bbe3b5b3e418207b316dc5bd7e3f8"}
    assert spo2["io"] == [
        {"host_path": "/dev/ttyUSB0", "container_path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor",
         "env": "NANOEDGE_POM_DEVICE"},
        {"host_path": "/var/lib/nanoedge/spo2", "container_path": "/var/lib/nanoedge/spo2", "mode": "rw",
         "kind": "state", "env": "NANOEDGE_STATE_DIR"}]


def test_the_spec_label_changes_with_the_node_s_path_types_and_swarm_services_have_none() -> None:
    as_file = deployments(PLAN, services(), "w4", addresses=ADDRESSES, pull_registry="172.30.0.1:5000",
                          path_types={"/dev/ttyUSB0": {"exists": True, "isreg": True}})[2]
    assert as_file["labels"]["io.nanoedge.spec"] == (
        "sha256:3b974dc2de94438c08feb6ca3c9f3fd8c6934c57bb3436421a487c35837c022c")
    (bot,) = deployments(PLAN, services(), "w1", addresses=ADDRESSES, backend="swarm")
    assert "io.nanoedge.spec" not in bot["labels"]


def test_a_regular_file_is_bind_mounted() -> None:
    spo2 = deployments(PLAN, services(), "w4", addresses=ADDRESSES,
                       path_types={"/dev/ttyUSB0": {"exists": True, "isreg": True}})[2]
    assert spo2["devices"] == []
    assert spo2["mounts"] == [{"type": "bind", "source": "/dev/ttyUSB0", "target": "/dev/ttyUSB0", "read_only": True},
                              STATE["spo2"]]
    assert spo2["paths"] == [{"path": "/dev/ttyUSB0", "mode": "ro", "kind": "sensor", "type": "file"},
                             {"path": "/var/lib/nanoedge/spo2", "mode": "rw", "kind": "state", "type": "unknown"}]


def test_consumers_get_their_producers_addresses() -> None:
    (alert,) = deployments(PLAN, services(), "w2", addresses=ADDRESSES)
    assert alert["env"] == {"NANOEDGE_OC_URI": "coap://172.30.0.23:5706/valve", "NANOEDGE_PORT": "5705",
                            "NANOEDGE_SPO2_URI": "coap://172.30.0.24:5701/spo2"}
    assert alert["cpus"] == 0.25 and alert["memory"] == "48M"
    (display,) = deployments(PLAN, services(), "w5", addresses=ADDRESSES)
    assert display["env"]["NANOEDGE_DISPLAY_SOURCES"] == ",".join([
        "spo2=coap://172.30.0.24:5701/spo2", "hr=coap://172.30.0.24:5702/hr", "hrv=coap://172.30.0.24:5703/hrv",
        "bot=coap://172.30.0.21:5704/temperature", "alert=coap://172.30.0.22:5705/alert",
        "oc=coap://172.30.0.23:5706/valve"])
    assert display["writable_paths"] == ["/run/nanoedge/display"]


DIRECTORY = "coap://127.0.0.1:5690"


def test_with_the_directory_consumers_name_their_producers_and_producers_their_own_address() -> None:
    (alert,) = deployments(PLAN, services(), "w2", addresses=ADDRESSES, directory=DIRECTORY + "/")
    assert alert["env"] == {"NANOEDGE_DIRECTORY_URI": DIRECTORY, "NANOEDGE_INSTANCE": "w2",
                            "NANOEDGE_OC_URI": "service:oc",
                            "NANOEDGE_PORT": "5705", "NANOEDGE_SELF_URI": "coap://172.30.0.22:5705/alert",
                            "NANOEDGE_SPO2_URI": "service:spo2"}
    (display,) = deployments(PLAN, services(), "w5", addresses=ADDRESSES, directory=DIRECTORY)
    assert display["env"]["NANOEDGE_DISPLAY_SOURCES"] == (
        "spo2=service:spo2,hr=service:hr,hrv=service:hrv,bot=service:bot,alert=service:alert,oc=service:oc")
    spo2 = deployments(PLAN, services(), "w4", addresses=ADDRESSES, directory=DIRECTORY)[2]
    assert spo2["env"] == {"NANOEDGE_DIRECTORY_URI": DIRECTORY, "NANOEDGE_INSTANCE": "w4",
                           "NANOEDGE_POM_DEVICE": "/dev/ttyUSB0",
                           "NANOEDGE_PORT": "5701", "NANOEDGE_SELF_URI": "coap://172.30.0.24:5701/spo2",
                           "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/spo2"}


@pytest.mark.parametrize("placements", [
    {"alert": "w2", "spo2": "w4", "oc": "w3"},
    {"alert": "w2", "spo2": "w1", "oc": "w5"},  # the producers moved
    {"alert": "w2"},  # the producers placed nowhere for now
])
def test_with_the_directory_a_consumers_environment_does_not_follow_its_producers(placements) -> None:
    plan = dict(PLAN, placements=placements, by_node={"w2": ["alert"]})
    (alert,) = deployments(plan, services(), "w2", addresses=ADDRESSES, directory=DIRECTORY)
    assert (alert["env"]["NANOEDGE_SPO2_URI"], alert["env"]["NANOEDGE_OC_URI"]) == ("service:spo2", "service:oc")


ALERT_BY_ADDRESS = {"NANOEDGE_OC_URI": "coap://172.30.0.23:5706/valve", "NANOEDGE_PORT": "5705",
                    "NANOEDGE_SPO2_URI": "coap://172.30.0.24:5701/spo2"}
ALERT_AT_THE_DIRECTORY = {"NANOEDGE_DIRECTORY_URI": DIRECTORY, "NANOEDGE_INSTANCE": "w2",
                          "NANOEDGE_SELF_URI": "coap://172.30.0.22:5705/alert"}


def without_key(name: str, **changes: t.Any) -> t.Dict[str, t.Any]:
    """The example service's service.json as written before the directory key existed, still shipping nanoedge_ns."""
    spec = dict(specs()[name], **changes)
    del spec["directory"]
    return spec


@pytest.mark.parametrize("given, expected", [
    # both say "directory": true (the example files): names
    ({}, dict(ALERT_AT_THE_DIRECTORY, NANOEDGE_OC_URI="service:oc", NANOEDGE_PORT="5705",
              NANOEDGE_SPO2_URI="service:spo2")),
    # the consumer without the key, though its libraries include nanoedge_ns: addresses, no directory
    ({"alert": without_key("alert")}, ALERT_BY_ADDRESS),
    ({"alert": dict(specs()["alert"], directory=False)}, ALERT_BY_ADDRESS),
    # the consumer says true, spo2 does not (it does not register): spo2's address, oc's name
    ({"spo2": without_key("spo2")}, dict(ALERT_AT_THE_DIRECTORY, NANOEDGE_OC_URI="service:oc", NANOEDGE_PORT="5705",
                                         NANOEDGE_SPO2_URI="coap://172.30.0.24:5701/spo2")),
    ({"spo2": without_key("spo2"), "oc": without_key("oc")}, dict(ALERT_AT_THE_DIRECTORY, **ALERT_BY_ADDRESS)),
])
def test_with_the_directory_the_key_decides(given: t.Dict[str, t.Any], expected: t.Dict[str, str]) -> None:
    (alert,) = deployments(PLAN, services(), "w2", addresses=ADDRESSES, directory=DIRECTORY, specs=given)
    assert alert["env"] == expected


def test_with_the_directory_a_producer_without_the_key_does_not_register() -> None:
    spo2 = deployments(PLAN, services(), "w4", addresses=ADDRESSES, directory=DIRECTORY,
                       specs={"spo2": without_key("spo2")})[2]
    assert spo2["env"] == {"NANOEDGE_POM_DEVICE": "/dev/ttyUSB0", "NANOEDGE_PORT": "5701",
                           "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/spo2"}


def test_with_the_directory_images_labelled_the_older_way_are_not_named() -> None:
    # without a description: no directory for them, and a consumer that uses it is not told to look them up
    spo2 = deployments(PLAN, labelled_the_older_way(), "w4", addresses=ADDRESSES, directory=DIRECTORY)[2]
    assert spo2["env"] == {"NANOEDGE_PORT": "5701"}
    (alert,) = deployments(PLAN, labelled_the_older_way(), "w2", addresses=ADDRESSES, directory=DIRECTORY,
                           specs={"alert": specs()["alert"]})
    assert alert["env"] == dict(ALERT_AT_THE_DIRECTORY, NANOEDGE_PORT="5705")


@pytest.mark.parametrize("directory", ["127.0.0.1:5690", "coap://127.0.0.1", "coap://127.0.0.1:5690/local", 5690])
def test_a_bad_directory_is_refused(directory: t.Any) -> None:
    with pytest.raises(DeploymentError) as caught:
        deployments(PLAN, services(), "w2", addresses=ADDRESSES, directory=directory)
    assert str(caught.value) == ("directory %r must be empty or coap://HOST:PORT (the node's directory as its services "
                                 "reach it, e.g. coap://127.0.0.1:5690)" % (directory,))


def test_unplaced_producers_are_left_out() -> None:
    plan = dict(PLAN, placements={"alert": "w2"}, by_node={"w2": ["alert"]})
    (alert,) = deployments(plan, services(), "w2", addresses=ADDRESSES)
    assert alert["env"] == {"NANOEDGE_PORT": "5705"}


def test_bare_metal_uses_host_paths_and_install_dir() -> None:
    (bot,) = deployments(PLAN, services(), "w1", addresses=ADDRESSES, backend="baremetal",
                         install_dir="/srv/nano")
    assert bot["backend"] == "baremetal"
    assert bot["env"] == {"NANOEDGE_PORT": "5704", "NANOEDGE_W1_DEVICES": "/sys/bus/w1/devices",
                          "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/bot"}
    assert bot["writable_paths"] == ["/var/lib/nanoedge/bot"]
    assert bot["cpu_quota"] is None and bot["memory_max"] is None
    # the image's /opt/nanoedge becomes the service's folder: program and libraries keep their places
    assert bot["service_dir"] == "/srv/nano/services/bot"
    assert bot["program"] == "/srv/nano/services/bot/service/main.py"
    assert bot["pythonpath"] == ["/srv/nano/services/bot/lib"]
    assert bot["image_home"] == "/opt/nanoedge"
    assert bot["image_paths"] == ["/opt/nanoedge/service", "/opt/nanoedge/lib/nanoedge_ns"]
    assert (bot["source_registry"], bot["source_repository"]) == ("http://127.0.0.1:5000", "nanoedge/bot")
    assert bot["libraries"] == ["common/nanoedge_ns"]
    assert bot["python_requirements"] == ["aiocoap==0.4.17"]


def test_bare_metal_source_registry_without_one_from_the_lookup() -> None:
    profiles = [dict(p, registry="") for p in services()]
    (bot,) = deployments(PLAN, profiles, "w1", addresses=ADDRESSES, backend="baremetal")
    assert bot["source_registry"] == "https://127.0.0.1:5000"


def test_an_image_without_a_description_runs_as_a_container_with_what_it_says() -> None:
    (alert,) = deployments(PLAN, labelled_the_older_way(), "w2", addresses=ADDRESSES)
    assert alert["env"] == {"NANOEDGE_PORT": "5705"}
    assert alert["port"] == {"number": 5705, "protocol": "udp"}
    assert alert["mounts"] == [] and alert["devices"] == []
    assert "io.nanoedge.uri" not in alert["labels"]
    assert alert["program"] is None
    spo2 = deployments(PLAN, labelled_the_older_way(), "w4", addresses=ADDRESSES)[2]
    assert spo2["env"] == {"NANOEDGE_PORT": "5701"} and spo2["devices"] == []


def test_a_description_given_in_specs_replaces_the_profiles() -> None:
    (alert,) = deployments(PLAN, labelled_the_older_way(), "w2", addresses=ADDRESSES,
                           specs={"alert": specs()["alert"], "spo2": specs()["spo2"]})
    # spo2's description came from specs, oc's profile has no provides: only spo2's address
    assert alert["env"] == {"NANOEDGE_PORT": "5705", "NANOEDGE_SPO2_URI": "coap://172.30.0.24:5701/spo2"}
    assert alert["program"] == "/opt/nanoedge/services/alert/service/main.py"


@pytest.mark.parametrize("image, expected", [
    ("127.0.0.1:5000/nanoedge/spo2:1.0.0", ("127.0.0.1:5000", "nanoedge/spo2")),
    ("registry.lan/a/b@sha256:" + "0" * 64, ("registry.lan", "a/b")),
    ("localhost/spo2", ("localhost", "spo2")),
    ("nanoedge/spo2:1.0", ("", "nanoedge/spo2")),
])
def test_split_image(image: str, expected: t.Tuple[str, str]) -> None:
    assert split_image(image) == expected


def test_backend_per_service() -> None:
    result = deployments(PLAN, services(), "w4", addresses=ADDRESSES, backends={"hrv": "baremetal"})
    assert [(d["name"], d["backend"]) for d in result] == [("hr", "container"), ("hrv", "baremetal"),
                                                           ("spo2", "container")]


@pytest.mark.parametrize("kind, backend, note", [
    ("file", "swarm", ""),
    ("missing", "swarm", ""),
    ("char", "container", "runs on the node's engine: Swarm services cannot use the device(s) /dev/ttyUSB0"),
    ({"exists": True, "isblk": True}, "container",
     "runs on the node's engine: Swarm services cannot use the device(s) /dev/ttyUSB0"),
])
def test_swarm_backend_and_device_nodes(kind: t.Any, backend: str, note: str) -> None:
    """Swarm services cannot be granted devices: a real device node keeps the service on its node's engine."""
    result = deployments(PLAN, services(), "w4", addresses=ADDRESSES, backend="swarm",
                         path_types={"/dev/ttyUSB0": kind})
    assert [(d["name"], d["backend"], d["backend_note"]) for d in result] == [
        ("hr", backend, note), ("hrv", backend, note), ("spo2", backend, note)]
    spo2 = result[2]
    assert spo2["env"]["NANOEDGE_POM_DEVICE"] == "/dev/ttyUSB0"
    if backend == "swarm":
        assert spo2["devices"] == []
        assert spo2["mounts"] == [{"type": "bind", "source": "/dev/ttyUSB0", "target": "/dev/ttyUSB0",
                                   "read_only": True}, STATE["spo2"]]
    else:
        assert spo2["devices"] == ["/dev/ttyUSB0:/dev/ttyUSB0:r"]
        assert spo2["mounts"] == [STATE["spo2"]]


def test_swarm_backend_mounts_container_paths() -> None:
    (bot,) = deployments(PLAN, services(), "w1", addresses=ADDRESSES, backend="swarm")
    assert (bot["backend"], bot["backend_note"]) == ("swarm", "")
    assert bot["env"] == {"NANOEDGE_PORT": "5704", "NANOEDGE_W1_DEVICES": "/run/nanoedge/w1",
                          "NANOEDGE_STATE_DIR": "/var/lib/nanoedge/bot"}
    assert bot["mounts"] == [{"type": "bind", "source": "/sys/bus/w1/devices", "target": "/run/nanoedge/w1",
                              "read_only": True}, STATE["bot"]]


def test_a_node_without_services() -> None:
    assert deployments(PLAN, services(), "w9", addresses=ADDRESSES) == []


def test_a_profile_without_description_runs_with_image_defaults() -> None:
    profiles = [{k: v for k, v in p.items() if k != "description"} for p in services()]
    (bot,) = deployments(PLAN, profiles, "w1", addresses=ADDRESSES)
    assert bot["env"] == {} and bot["mounts"] == [] and bot["port"] is None
    assert "io.nanoedge.uri" not in bot["labels"]


@pytest.mark.parametrize("change, message", [
    ({"backends": {"xray": "container"}}, "backends names unknown service(s): xray"),
    ({"backend": "vm"}, "service 'alert': backend must be one of container, baremetal, swarm, got 'vm'"),
    ({"node": "W2!"}, "node 'W2!' is not a valid node name"),
    ({"node": "w2\n"}, "node 'w2\\n' is not a valid node name"),
    ({"name_prefix": "svc-\n"}, "name_prefix 'svc-\\n' must be lower-case letters, digits, '.', '_' or '-'"),
    ({"name_prefix": "Bad Prefix"}, "name_prefix 'Bad Prefix' must be lower-case letters, digits, '.', '_' or '-'"),
    ({"plan": {"placements": {}}}, "plan must be the result of nanoedge.core.allocate (a dict with by_node)"),
    ({"services": "spo2"}, "services must be a list of service profiles (nanoedge.core.service_profiles)"),
    ({"addresses": {}}, "service 'alert' consumes 'spo2' on node 'w4', whose address is unknown "
                        "(set nanoedge_address or ansible_host for it)"),
    ({"specs": {"alert": {"name": "alert", "io": [{"host_path": "dev/x", "container_path": "/x"}]}}},
     "service 'alert': io[0].host_path must be an absolute path without '..', got 'dev/x'"),
    ({"specs": {"alert": {"name": "alert", "port": {"number": 70000}}}},
     "service 'alert': port must be {number: 1-65535, protocol: udp|tcp}, got {'number': 70000}"),
    ({"specs": {"alert": {"name": "alert", "program": "../../etc/passwd"}}},
     "service 'alert': program must be a relative path without '..', got '../../etc/passwd'"),
    ({"specs": {"alert": {"name": "alert", "python_requirements": ["aiocoap"]}}},
     "service 'alert': python_requirements must be pinned (name==version), got ['aiocoap']"),
    ({"specs": {"alert": {"name": "other"}}}, "service 'alert': its description names service 'other'"),
    ({"specs": {"alert": ["port"]}}, "service 'alert': the description must be a JSON object, got list"),
    ({"specs": {"alert": {"name": "alert", "requirements": {"gpu": 1}}}},
     "service 'alert': requirements: unknown requirement key(s) 'gpu' (known: capabilities, cpu, memory_mb, "
     "storage_mb, power, network, min_battery_percent)"),
    ({"specs": {"alert": {"name": "alert", "consumes": {"spo2": {"env": "1BAD"}}}}},
     "service 'alert': consumes 'spo2': env must be an environment variable name"),
])
def test_errors_name_what_is_at_fault(change: t.Dict[str, t.Any], message: str) -> None:
    args = {"plan": PLAN, "services": services(), "node": "w2", "addresses": ADDRESSES}
    args.update(change)
    with pytest.raises(DeploymentError) as error:
        deployments(**args)
    assert str(error.value) == message


def test_bad_digest_is_refused() -> None:
    broken = services()
    broken[0]["digest"] = "sha256:short"
    with pytest.raises(DeploymentError, match=r"^service 'alert': digest must be sha256:<64 hex digits>, got 'sha256:short'$"):
        deployments(PLAN, broken, "w2", addresses=ADDRESSES)


def test_a_digest_with_a_trailing_newline_is_refused() -> None:
    broken = services()
    broken[0]["digest"] = "sha256:" + "a" * 64 + "\n"
    with pytest.raises(DeploymentError, match=r"^service 'alert': digest must be sha256:<64 hex digits>, got 'sha256:a{64}\\n'$"):
        deployments(PLAN, broken, "w2", addresses=ADDRESSES)


def test_check_spec_of_nothing() -> None:
    assert check_spec("x", None)["io"] == []


@pytest.mark.parametrize("image, pull_registry, expected", [
    ("127.0.0.1:5000/nanoedge/spo2:1.0", "172.30.0.1:5000", "172.30.0.1:5000/nanoedge/spo2:1.0"),
    ("127.0.0.1:5000/nanoedge/spo2", "", "127.0.0.1:5000/nanoedge/spo2:latest"),
    ("nanoedge/spo2:2@sha256:" + "a" * 64, "http://10.0.0.1:5000/", "10.0.0.1:5000/nanoedge/spo2:2"),
])
def test_tag_reference(image, pull_registry, expected) -> None:
    assert tag_reference(image, pull_registry) == expected


@pytest.mark.parametrize("arch, platforms, expected", [
    ("arm/v7", ["linux/amd64", "linux/arm/v7", "linux/arm64"], "linux/arm/v7"),
    # a 32-bit userland on a 64-bit kernel: the arm64 image does not run there, the arm/v7 one does
    ("arm/v7", ["linux/arm/v6", "linux/arm64"], "linux/arm/v6"),
    ("arm/v6", ["linux/arm/v5", "linux/arm/v7"], "linux/arm/v5"),
    ("arm64", ["linux/amd64", "linux/arm64/v8"], "linux/arm64/v8"),
    ("amd64", ["linux/amd64"], "linux/amd64"),
    # a profile of an older version names the kernel's machine
    ("armv7l", ["linux/arm/v7"], "linux/arm/v7"),
    ("aarch64", ["linux/arm64"], "linux/arm64"),
    # not known: the node's engine picks
    ("", ["linux/arm/v7"], None),
    ("arm/v7", [], None),
    ("arm/v7", None, None),
    ("arm/v7", ["unknown"], None),
])
def test_image_platform(arch: str, platforms: t.Any, expected: t.Optional[str]) -> None:
    assert image_platform("spo2", "w4", arch, platforms) == expected


@pytest.mark.parametrize("arch, platforms, message", [
    ("arm/v7", ["linux/amd64", "linux/arm64"],
     "service 'spo2': its image has no platform that node 'w4' (arm/v7) runs; it has linux/amd64, linux/arm64"),
    ("arm/v6", ["linux/arm/v7"], "service 'spo2': its image has no platform that node 'w4' (arm/v6) runs; it has linux/arm/v7"),
])
def test_an_image_without_the_nodes_platform_is_refused(arch: str, platforms: t.List[str], message: str) -> None:
    with pytest.raises(DeploymentError) as info:
        image_platform("spo2", "w4", arch, platforms)
    assert str(info.value) == message


def test_each_service_runs_its_images_platform_for_the_node() -> None:
    multi = [dict(service, platforms=["linux/amd64", "linux/arm/v7", "linux/arm64"]) for service in services()]
    got = deployments(PLAN, multi, "w4", addresses=ADDRESSES, platform="arm/v7")
    assert [(d["name"], d["platform"]) for d in got] == [
        ("hr", "linux/arm/v7"), ("hrv", "linux/arm/v7"), ("spo2", "linux/arm/v7")]
    assert [d["platform"] for d in deployments(PLAN, multi, "w4", addresses=ADDRESSES)] == [None, None, None]


def test_platform_must_be_a_string() -> None:
    with pytest.raises(DeploymentError) as info:
        deployments(PLAN, services(), "w4", addresses=ADDRESSES, platform=["arm/v7"])
    assert str(info.value) == "platform must be the node's platform as a string (arm/v7), got list"
