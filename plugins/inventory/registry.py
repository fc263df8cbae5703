# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: registry
short_description: Hosts and groups from the live profiles in a CoAP profile registry
version_added: 0.1.0
description:
  - Reads every live resource profile from a CoAP profile registry (C(GET /profiles), role
    R(nanoedge.core.registry,ansible_collections.nanoedge.core.registry_role)) and adds one host per profile,
    named after the profile's C(node).
  - Each host gets the variable C(nanoedge_profile), the profile as the registry holds it, marked unsafe
    so that nothing in it is ever templated.
  - Each host joins the groups C(cap_<capability>) for every capability, C(power_<ac|dc>), C(net_<type>)
    for every network type and C(arch_<arch>). Characters not allowed in group names become C(_).
  - Profiles that do not follow the profile schema, or are filed under another node's name, are skipped
    with a warning.
  - The configuration file name must end in C(registry.nanoedge.yml) or C(registry.nanoedge.yaml).
  - A profile is self-reported data, written by the node (or by anyone the registry lets write). Do not take
    connection variables (C(ansible_host), C(ansible_port), C(ansible_user), ...) from it with O(compose), or a node
    could send the controller's connections, and the credentials they carry, to any address. Keep the nodes'
    addresses in a static inventory next to this source; use the profile for groups and facts.
author:
  - nanoedge.core contributors (!UNKNOWN)
requirements:
  - aiocoap (on the controller); aiocoap[oscore] with O(oscore_credentials)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; marks the file as this plugin's configuration.
    type: str
    required: true
    choices: [nanoedge.core.registry]
  url:
    description:
      - The registry, C(coap://host) or C(coap://host:port) (default port 5683), or a list of them (the
        active and the backup manager). They are tried in order and the first that answers wins.
    type: list
    elements: str
    required: true
    env:
      - name: NANOEDGE_REGISTRY_URL
  timeout:
    description: Seconds to wait for one registry's answer (a block-wise transfer counts as one answer).
    type: float
    default: 5
  retries:
    description: How many more times to ask a registry that did not answer before moving to the next one.
    type: int
    default: 1
  allow_unreachable:
    description:
      - What to do when no registry answers. V(false) fails the source, V(true) adds no hosts and warns once.
      - V(true) suits an inventory folder that also lists the hosts statically, so that a cluster that is down,
        or not up yet, does not get in the way of the commands that bring it up.
    type: bool
    default: false
  oscore_credentials:
    description:
      - An aiocoap credentials file (JSON) naming one OSCORE security context per registry,
        mapping each URI pattern C(coap://HOST:PORT/*) to an C(oscore) entry with the C(basedir) of its context;
        a relative C(basedir) is taken from the file's folder.
      - Every request is then protected; a registry the file does not name counts as one that did not answer.
      - With security on (the default of the C(nanoedge.core.registry) role), reading the registry needs a manager's
        or the controller's credentials; the role provisions the controller's in
        C(<nanoedge_registry_oscore_material_dir>/clients/controller.json) (docs/user-guide.md, "Security").
      - Needs aiocoap's C(oscore) extra on the controller; the source fails naming what is missing.
    type: path
    env:
      - name: NANOEDGE_OSCORE_CREDENTIALS
    version_added: 0.2.0
"""

EXAMPLES = r"""
# registry.nanoedge.yml: every live node, grouped by what it has
plugin: nanoedge.core.registry
url:
  - coap://10.0.0.1
  - coap://10.0.0.2
---
# registry.nanoedge.yml: with variables and extra groups from the profiles. The connection
# details (ansible_host ...) stay in a static inventory: a profile is what the node says of itself.
plugin: nanoedge.core.registry
url: coap://manager1.local:5683
compose:
  nanoedge_cores: nanoedge_profile.cpu.cores
  nanoedge_room: nanoedge_profile.labels.room | default('unknown')
groups:
  battery_low: nanoedge_profile.power.battery_percent is not none and nanoedge_profile.power.battery_percent < 20
keyed_groups:
  - key: nanoedge_profile.model
    prefix: model
strict: true
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/nanoedge-inventory-cache
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402
from ansible.utils.display import Display  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils import _coap, _oscore  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._registry_inventory import (  # noqa: E402
    groups_for,
    live_profiles,
)

NAME = "nanoedge.core.registry"
display = Display()


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = NAME

    def verify_file(self, path: str) -> bool:
        return super().verify_file(path) and path.endswith(("registry.nanoedge.yml", "registry.nanoedge.yaml"))

    def parse(self, inventory: t.Any, loader: t.Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        profiles = None
        if use_cache:
            try:
                profiles = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if profiles is None:
            profiles = self._fetch()
            if profiles is None:
                # no registry answered and that is allowed: nothing to add, nothing worth caching
                return
        if update_cache:
            self._cache[cache_key] = profiles
        self._populate(profiles)

    def _fetch(self) -> t.Optional[t.Dict[str, t.Any]]:
        if not _coap.HAS_AIOCOAP:
            raise AnsibleParserError("%s: the Python library aiocoap is required on the controller (%s)"
                                     % (NAME, _coap.AIOCOAP_IMPORT_ERROR))
        urls = self.get_option("url")
        if not urls:
            raise AnsibleParserError("%s: url is empty: give at least one coap://host[:port]" % NAME)
        credentials = {}  # type: t.Dict[str, str]
        if self.get_option("oscore_credentials"):
            missing = _oscore.oscore_missing()
            if missing:
                raise AnsibleParserError("%s: oscore_credentials needs aiocoap's oscore extra on the controller, missing: %s"
                                         " (pip install 'aiocoap[oscore]')" % (NAME, ", ".join(missing)))
            credentials["oscore_credentials"] = self.get_option("oscore_credentials")
        errors = []
        for url in urls:
            try:
                return _coap.run_fetch_profiles(url, timeout=self.get_option("timeout"),
                                                retries=self.get_option("retries"), **credentials)
            except ValueError as exc:
                raise AnsibleParserError("%s: %s" % (NAME, exc)) from exc
            except _coap.CoapError as exc:
                errors.append(str(exc))
                display.vvv("%s: %s" % (NAME, exc))
        message = "%s: no registry answered: %s" % (NAME, "; ".join(errors))
        if self.get_option("allow_unreachable"):
            display.warning(message + " (no hosts or groups from it)")
            return None
        raise AnsibleParserError(message)

    def _populate(self, raw: t.Any) -> None:
        profiles, problems = live_profiles(raw)
        for problem in problems:
            display.warning("%s: skipping %s" % (NAME, problem))
        strict = self.get_option("strict")
        for node, profile in profiles.items():
            host = self.inventory.add_host(node)
            safe_profile = wrap_var(profile)
            self.inventory.set_variable(host, "nanoedge_profile", safe_profile)
            for group in groups_for(profile):
                self.inventory.add_group(group)
                self.inventory.add_child(group, host)
            self._set_composite_vars(self.get_option("compose"), self.inventory.get_host(host).get_vars(), host,
                                     strict=strict)
            hostvars = self.inventory.get_host(host).get_vars()
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)
