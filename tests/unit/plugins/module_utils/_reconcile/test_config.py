# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reconcile daemon's configuration: defaults, where this manager stands, and errors that name the key."""

from __future__ import annotations

import pytest

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import ConfigError, validate_config


def test_minimal_configuration_gets_every_default():
    config = validate_config({"registry": "coap://[::1]", "command": ["ansible-playbook", "site.yml"]})
    assert config == {
        "registry": "coap://[::1]:5683", "command": ["ansible-playbook", "site.yml"], "managers": [], "self": None,
        "state_dir": "/var/lib/nanoedge-reconcile", "lock_file": "/var/lib/nanoedge-reconcile/reconcile.lock",
        "plan_file": "", "log_dir": "/var/lib/nanoedge-reconcile/runs", "keep_runs": 20, "tail_lines": 20,
        "interval": 30, "debounce": 0.5, "flap_limit": 4, "flap_window": 30, "settle": 0, "lease_poll": 1.0,
        "lease_ttl": 3.0, "request_timeout": 10, "command_timeout": 600, "stop_grace": 30, "retry_backoff": 30,
        "retry_backoff_max": 600, "oscore_context": "", "oscore_credentials": "", "environment": {}, "obsolete": [],
        "workers": [], "move_command": [], "services_file": "", "full_every": 900, "directory": "",
    }


def test_the_keys_of_the_probe_election_are_accepted_and_reported_obsolete():
    config = validate_config({"registry": "coap://a", "command": ["true"], "probe_interval": 5, "probe_failures": 2})
    assert config["obsolete"] == ["probe_failures", "probe_interval"]
    assert "probe_interval" not in config


@pytest.mark.parametrize("managers, self_value, registry, expected", [
    (["coap://m1", "coap://m2"], None, "coap://m2", 1),
    (["coap://m1", "coap://m2"], 0, "coap://[::1]", 0),
    (["coap://m1:5683", "coap://m2"], "coap://m2:5683", "coap://[::1]", 1),
    (["coap://[fd00::1]", "coap://[fd00::2]:5684"], "coap://[fd00::2]:5684", "coap://[::1]", 1),
    (["coap://[FD00::1]:5683", "coap://M2"], None, "coap://m2/", 1),
])
def test_self_is_found_by_index_uri_or_registry(managers, self_value, registry, expected):
    raw = {"registry": registry, "command": ["true"], "managers": managers}
    if self_value is not None:
        raw["self"] = self_value
    assert validate_config(raw)["self"] == expected


@pytest.mark.parametrize("raw, message", [
    ([], "must be a JSON object"),
    ({"registry": "coap://a", "command": ["true"], "self": 0}, "self is set but managers is empty"),
    ({"registry": "coap://a", "command": ["true"], "managers": ["coap://a", "coap://a:5683"]},
     "managers lists a URI twice"),
    ({"registry": "coap://a", "command": ["true"], "managers": ["coap://a"], "self": "coap://b"},
     "self coap://b:5683 is not one of managers (coap://a:5683)"),
    ({"registry": "coap://a/profiles", "command": ["true"]},
     "registry 'coap://a/profiles': give only coap://host[:port]; the paths are fixed (/profiles/{node})"),
    ({"registry": "coap://a:0", "command": ["true"]}, "registry 'coap://a:0': port must be from 1 to 65535"),
    ({"registry": "coap://a", "command": ["true"], "managers": ["coap://a", 7]},
     "managers[1]: registry 7: must be a string coap://host[:port]"),
    ({"registry": "coap://a", "command": ["true"], "managers": ["coap://a"], "self": "coap://u@a"},
     "self: registry 'coap://u@a': user information is not allowed"),
    ({"registry": "coap://a", "command": ["true", 3]},
     "command must be a non-empty list of strings (the argv of the reconcile command)"),
    ({"registry": "coap://a", "command": ["true"], "stop_grace": -1}, "stop_grace must be >= 0, got -1"),
    ({"registry": "coap://a", "command": ["true"], "flap_window": -1}, "flap_window must be >= 0, got -1"),
    ({"registry": "coap://a", "command": ["true"], "flap_limit": 0}, "flap_limit must be >= 1, got 0"),
    ({"registry": "coap://a", "command": ["true"], "flap_limit": 2.5}, "flap_limit must be an integer, got 2.5"),
    ({"registry": "coap://a", "command": ["true"], "keep_runs": True}, "keep_runs must be an integer, got true"),
    ({"registry": "coap://a", "command": ["true"], "environment": {"A": 1}}, "environment must map names to strings"),
    ({"registry": "coap://a", "command": ["true"], "lease_poll": 0}, "lease_poll must be > 0, got 0"),
    ({"registry": "coap://a", "command": ["true"], "lease_ttl": 1},
     "lease_ttl must be greater than lease_poll (1.0) and at most 60, got 1"),
    ({"registry": "coap://a", "command": ["true"], "lease_ttl": 61},
     "lease_ttl must be greater than lease_poll (1.0) and at most 60, got 61"),
])
def test_bad_configuration_names_the_key(raw, message):
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    assert str(caught.value) == message
