# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs of nanoedge.core.site's plan: registry URIs, the nodes to plan for,
the placement running now. The last two are checked against the Jinja that
site.yml used before (kept here as the reference) on generated inventories."""

from __future__ import annotations

import typing as t

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ansible_collections.nanoedge.core.plugins.plugin_utils._site_inputs import (
    SiteInputError,
    current_placement,
    plan_nodes,
    registry_uris,
)


def host(name: str, **variables: t.Any) -> t.Dict[str, t.Any]:
    return dict(variables, inventory_hostname=name)


def reached(name: str, profile: t.Any = None, **variables: t.Any) -> t.Dict[str, t.Any]:
    """A worker step 1 reached: it registered the facts and has the profile it discovered."""
    return host(name, nanoedge_site_discovered={"changed": False, "ansible_facts": {"nanoedge_profile": profile}},
                nanoedge_profile=profile or {"node": name, "from": "discovery"}, **variables)


def running(*services: str) -> t.Dict[str, t.Any]:
    return {"nanoedge_deploy_running": {"services": list(services), "units": []}}


# --- registry_uris ----------------------------------------------------------------

@pytest.mark.parametrize("managers, port, expected", [
    ([host("m1", nanoedge_address="10.0.0.11"), host("m2", nanoedge_address="fd00::12")], None,
     ["coap://10.0.0.11:5683", "coap://[fd00::12]:5683"]),
    ([host("m1"), host("m2", nanoedge_address=""), host("m3", nanoedge_address=None)], 5684,
     ["coap://m1:5684", "coap://m2:5684", "coap://m3:5684"]),
    ([host("m1", nanoedge_address="::1")], "6000", ["coap://[::1]:6000"]),
    ([host("m1", nanoedge_address="[fd00::1]")], None, ["coap://[fd00::1]:5683"]),
    (["fd00::1", "::1", "m1.local", "172.30.0.11"], 5683,
     ["coap://[fd00::1]:5683", "coap://[::1]:5683", "coap://m1.local:5683", "coap://172.30.0.11:5683"]),
    ((name for name in ["fd00::1"]), None, ["coap://[fd00::1]:5683"]),
    ([], None, []),
])
def test_registry_uris(managers, port, expected):
    assert registry_uris(managers, port) == expected


@pytest.mark.parametrize("managers, port, message", [
    ([host("m1", nanoedge_address="m1:5684")], None,
     "manager 'm1': host 'm1:5684': has a ':' but is not an IPv6 address (give the port separately)"),
    ([host("m1", nanoedge_address="fd00::1:5683:x")], None,
     "manager 'm1': host 'fd00::1:5683:x': has a ':' but is not an IPv6 address (give the port separately)"),
    ([host("m1", nanoedge_address="[10.0.0.1]")], None, "manager 'm1': host '[10.0.0.1]': brackets are for IPv6 addresses only"),
    ([host("m1", nanoedge_address="m1/x")], None,
     "manager 'm1': registry 'coap://m1/x:5683': give only coap://host[:port]; the paths are fixed (/profiles/{node})"),
    ([host("m1", nanoedge_address=11)], None, "manager 'm1': host 11: must be a host name or an IP address"),
    (["fd00::1"], 0, "manager 'fd00::1': port 0: must be an integer from 1 to 65535"),
    ([host("m1")], True, "manager 'm1': port True: must be an integer from 1 to 65535"),
    ([{"nanoedge_address": "10.0.0.1"}], None, "manager #0 must be a host's variables (hostvars[name]), got dict"),
    ([host("m1"), 7], None, "manager #1 must be a host's variables (hostvars[name]), got int"),
    ("m1", None, "the managers must be a list, got str"),
    ({"m1": {}}, None, "the managers must be a list, got dict"),
])
def test_registry_uris_errors(managers, port, message):
    with pytest.raises(SiteInputError) as error:
        registry_uris(managers, port)
    assert str(error.value) == message


# --- plan_nodes -------------------------------------------------------------------

LIVE = {"w1": {"node": "w1", "from": "registry"}, "w3": {"node": "w3", "from": "registry"}}


@pytest.mark.parametrize("workers, nodes_from, expected", [
    # reached this run: the live profile when there is one, else this run's discovery
    ([reached("w1"), reached("w2"), host("w3")], "discovery",
     {"w1": LIVE["w1"], "w2": {"node": "w2", "from": "discovery"}}),
    # registry: every worker with a live profile, reached or not
    ([reached("w1"), reached("w2"), host("w3")], "registry", {"w1": LIVE["w1"], "w3": LIVE["w3"]}),
    # the order given is kept (first fit tries nodes in it)
    ([host("w3"), reached("w2"), reached("w1")], "discovery",
     {"w2": {"node": "w2", "from": "discovery"}, "w1": LIVE["w1"]}),
    # step 1 skipped (registry mode) or failed: not reached
    ([host("w2", nanoedge_site_discovered={"skipped": True}), host("w4", nanoedge_site_discovered={"failed": True})],
     "discovery", {}),
    ([], "registry", {}),
])
def test_plan_nodes(workers, nodes_from, expected):
    nodes = plan_nodes(workers, LIVE, nodes_from)
    assert nodes == expected
    assert list(nodes) == list(expected)


def test_plan_nodes_keeps_the_live_profile_object():
    # the registry_profiles lookup marks live profiles unsafe: they must reach allocate as they are
    assert plan_nodes([reached("w1")], LIVE)["w1"] is LIVE["w1"]


@pytest.mark.parametrize("workers, live, nodes_from, message", [
    ([host("w2", nanoedge_site_discovered={"ansible_facts": {}})], {}, "discovery",
     "worker 'w2': reached in this run but has no nanoedge_profile"),
    ([], {}, "inventory", "nodes_from must be discovery or registry, got 'inventory'"),
    ([], [], "discovery", "live (the profiles of nanoedge.core.registry_profiles) must be a dict, got list"),
    ([["w1"]], {}, "discovery", "worker #0 must be a host's variables (hostvars[name]), got list"),
    (None, {}, "discovery", "the workers must be a list, got NoneType"),
])
def test_plan_nodes_errors(workers, live, nodes_from, message):
    with pytest.raises(SiteInputError) as error:
        plan_nodes(workers, live, nodes_from)
    assert str(error.value) == message


# --- current_placement ------------------------------------------------------------

@pytest.mark.parametrize("workers, swarm, previous, expected", [
    # what the workers run, in their order: a service found twice is on the later worker
    ([host("w1", **running("bot", "hr")), host("w4", **running("spo2", "hr"))], None, None,
     {"bot": "w1", "hr": "w4", "spo2": "w4"}),
    # the Swarm pins win over what a worker reports
    ([host("w1", **running("bot"))], {"bot": "w3", "web": "w1"}, {}, {"bot": "w3", "web": "w1"}),
    # the previous plan fills in what ran on a worker not planned for (w2), never on a planned one (w1)
    ([host("w1", **running("bot"))], {}, {"placements": {"bot": "w2", "alert": "w2", "dd": "w1", "hr": "w9"}},
     {"bot": "w1", "alert": "w2", "hr": "w9"}),
    # a worker without running facts runs nothing known
    ([host("w1"), host("w2", nanoedge_deploy_running=None), host("w3", nanoedge_deploy_running={"units": []})],
     None, {"placements": {"bot": "w1"}}, {}),
    # a previous plan without placements adds nothing
    ([], None, {"strategy": "first_fit"}, {}),
])
def test_current_placement(workers, swarm, previous, expected):
    current = current_placement(workers, swarm, previous)
    assert current == expected
    assert list(current) == list(expected)


@pytest.mark.parametrize("workers, swarm, previous, message", [
    ([host("w1", nanoedge_deploy_running={"services": "bot"})], None, None,
     "worker 'w1': nanoedge_deploy_running.services must be a list, got str"),
    ([], ["bot"], None, "swarm (service -> pinned node) must be a dict, got list"),
    ([], None, [], "previous (the plan document) must be a dict, got list"),
    ([], None, {"placements": None}, "previous.placements must be a dict, got NoneType"),
    ([host("w1"), "w2"], None, None, "worker #1 must be a host's variables (hostvars[name]), got str"),
])
def test_current_placement_errors(workers, swarm, previous, message):
    with pytest.raises(SiteInputError) as error:
        current_placement(workers, swarm, previous)
    assert str(error.value) == message


# --- the same answers as the Jinja site.yml used before ------------------------------

OLD_WORKERS = """
{%- set ns = namespace(workers=[]) -%}
{%- for host in groups['workers'] | default([]) -%}
{%- if (host in nanoedge_live.profiles if nanoedge_site_nodes_from | default('discovery') == 'registry'
        else hostvars[host].nanoedge_site_discovered.ansible_facts is defined) -%}
{%- set ns.workers = ns.workers + [host] -%}
{%- endif -%}
{%- endfor -%}
{{ ns.workers }}"""

OLD_NODES = """
{%- set ns = namespace(nodes={}) -%}
{%- for host in _nanoedge_site_workers -%}
{%- set ns.nodes = ns.nodes | combine({host: nanoedge_live.profiles[host] if host in nanoedge_live.profiles
                                             else hostvars[host].nanoedge_profile}) -%}
{%- endfor -%}
{{ ns.nodes }}"""

OLD_CURRENT = """
{%- set ns = namespace(current={}) -%}
{%- for worker in _nanoedge_site_workers -%}
{%- for service in (hostvars[worker].nanoedge_deploy_running | default({})).services | default([]) -%}
{%- set ns.current = ns.current | combine({service: worker}) -%}
{%- endfor -%}
{%- endfor -%}
{%- set ns.current = ns.current | combine(nanoedge_swarm_current | default({})) -%}
{%- for service, node in _previous.items() if service not in ns.current and node not in _nanoedge_site_workers -%}
{%- set ns.current = ns.current | combine({service: node}) -%}
{%- endfor -%}
{{ ns.current }}"""

NAMES = ["w1", "w2", "w3", "w4"]
SERVICES = ["bot", "spo2", "hr", "alert"]


@st.composite
def clusters(draw: t.Callable[..., t.Any]) -> t.Dict[str, t.Any]:
    """An inventory of workers as site.yml sees it at step 4, with the live profiles and the previous plan."""
    names = draw(st.permutations(NAMES))
    hostvars = {}
    for name in names:
        variables = {"inventory_hostname": name}
        if draw(st.booleans()):
            variables["nanoedge_site_discovered"] = {"ansible_facts": {}}
            variables["nanoedge_profile"] = {"node": name, "from": "discovery"}
        if draw(st.booleans()):
            variables["nanoedge_deploy_running"] = {"services": draw(st.lists(st.sampled_from(SERVICES), unique=True))}
        hostvars[name] = variables
    live = {name: {"node": name, "from": "registry"} for name in draw(st.lists(st.sampled_from(NAMES), unique=True))}
    return {
        "names": list(names), "hostvars": hostvars, "live": live,
        "nodes_from": draw(st.sampled_from(["discovery", "registry"])),
        "swarm": draw(st.none() | st.dictionaries(st.sampled_from(SERVICES), st.sampled_from(NAMES))),
        "previous": draw(st.dictionaries(st.sampled_from(SERVICES), st.sampled_from(NAMES + ["w9"]))),
    }


def old_jinja(cluster: t.Dict[str, t.Any]) -> t.Tuple[t.Any, t.Any]:
    variables = {"groups": {"workers": cluster["names"]}, "hostvars": cluster["hostvars"],
                 "nanoedge_live": {"profiles": cluster["live"]}, "nanoedge_site_nodes_from": cluster["nodes_from"],
                 "_previous": cluster["previous"]}
    if cluster["swarm"] is not None:
        variables["nanoedge_swarm_current"] = cluster["swarm"]
    templar = Templar(loader=DataLoader(), variables=variables)
    variables["_nanoedge_site_workers"] = templar.template(trust_as_template(OLD_WORKERS))
    templar = Templar(loader=DataLoader(), variables=variables)
    return templar.template(trust_as_template(OLD_NODES)), templar.template(trust_as_template(OLD_CURRENT))


SAME_PAIRS_OTHER_ORDER = {
    "names": ["w1", "w2"], "live": {}, "nodes_from": "discovery", "previous": {},
    "hostvars": {"w1": {"inventory_hostname": "w1", "nanoedge_site_discovered": {"ansible_facts": {}},
                        "nanoedge_profile": {"node": "w1", "from": "discovery"},
                        "nanoedge_deploy_running": {"services": ["spo2", "hr"]}},
                 "w2": {"inventory_hostname": "w2"}},
    "swarm": {"hr": "w1", "spo2": "w1"},
}


@settings(max_examples=150, deadline=None)
@given(clusters())
@example(SAME_PAIRS_OTHER_ORDER)
def test_same_as_the_jinja_before(cluster):
    workers = [cluster["hostvars"][name] for name in cluster["names"]]
    nodes = plan_nodes(workers, cluster["live"], cluster["nodes_from"])
    current = current_placement([cluster["hostvars"][name] for name in nodes], cluster["swarm"],
                                {"placements": cluster["previous"]})
    old_nodes, old_current = old_jinja(cluster)
    assert list(nodes.items()) == list(old_nodes.items())
    # The placement is compared as a mapping: the old `combine` returned its second dict's order when the
    # two held the same pairs, and nothing reads the placement's order.
    assert current == old_current
