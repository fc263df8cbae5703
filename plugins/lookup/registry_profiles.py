# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: registry_profiles
author:
  - nanoedge.core contributors (!UNKNOWN)
short_description: Read the live resource profiles from the first CoAP profile registry that answers
version_added: 0.1.0
description:
  - Asks the CoAP profile registries of the managers (the role C(nanoedge.core.registry)) for every live
    resource profile (C(GET /profiles)), in the order given, and returns the answer of the first one that
    answers. With the active manager first and the backup after it, a plan is made through the backup while
    the active manager is down.
  - Every profile is validated again on the controller (it crossed the network). Invalid entries, and entries
    stored under another node's name, are left out with a warning and listed in RV(_raw[].skipped).
  - The same client code as M(nanoedge.core.coap_report) and the P(nanoedge.core.registry#inventory) inventory
    plugin, with the same retries.
options:
  _terms:
    description: Registries to ask, added before O(registries). Same syntax as O(registries).
    type: list
    elements: str
    required: false
  registries:
    description: The registries, each V(coap://host) or V(coap://host:port) (IPv6 addresses in brackets), in the order to ask them.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds to wait for one registry's answer (a block-wise transfer counts as one answer).
    type: float
    default: 5
  retries:
    description: How many more times to ask a registry that did not answer before moving to the next one.
    type: int
    default: 1
  oscore_credentials:
    description:
      - An aiocoap credentials file (JSON) naming one OSCORE security context per registry,
        mapping each URI pattern C(coap://HOST:PORT/*) to an C(oscore) entry with the C(basedir) of its context.
        Every request is then protected; a registry the file does not name counts as one that did not answer,
        it is never read unprotected.
      - With security on (the default of C(nanoedge.core.site)), reads need a manager's or the controller's
        credentials, which the C(nanoedge.core.registry) role provisions (docs/user-guide.md, "Security").
      - Needs aiocoap's C(oscore) extra on the controller; the lookup fails naming what is missing.
    type: path
    version_added: 0.2.0
notes:
  - Runs on the controller and needs the Python library aiocoap there.
  - Every error starts with C(nanoedge.core.registry_profiles:). When no registry answers, the message lists
    each registry with the reason it gave.
seealso:
  - plugin: nanoedge.core.registry
    plugin_type: inventory
  - module: nanoedge.core.coap_report
  - plugin: nanoedge.core.allocate
    plugin_type: filter
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
    support: full
    details: A lookup only reads the registry; it runs the same in check mode.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run in diff mode.
    support: N/A
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: full
    details: A lookup changes nothing.
"""

EXAMPLES = r"""
- name: Profiles from the active manager, or from the backup when it is down
  ansible.builtin.set_fact:
    live: "{{ lookup('nanoedge.core.registry_profiles', 'coap://10.0.0.1', 'coap://10.0.0.2') }}"

- name: Allocate the services to the live workers
  ansible.builtin.set_fact:
    plan: "{{ services | nanoedge.core.allocate(live.profiles) }}"

- name: Say which manager answered
  ansible.builtin.debug:
    msg: "profiles of {{ live.profiles | length }} nodes from {{ live.registry }}"
"""

RETURN = r"""
_raw:
  description: One dictionary (C(lookup) returns it, C(query) a list holding it).
  type: list
  elements: dict
  contains:
    registry:
      description: The registry that answered.
      type: str
      sample: coap://172.30.0.11:5683
    profiles:
      description: Node name to its live resource profile (C(docs/contracts.md), "The profile"), sorted by node name.
      type: dict
      sample: {"w4": {"schema": 1, "node": "w4", "capabilities": ["pom"]}}
    skipped:
      description: Why each left-out entry was left out.
      type: list
      elements: str
      sample: ["profile 'w9': it describes node 'w8'"]
    failed:
      description: The registries asked before the one that answered, each with why it did not.
      type: list
      elements: str
      sample: ["coap://172.30.0.11:5683: no answer within 5s (gave up after 2 attempts)"]
"""

import functools  # noqa: E402
import typing as t  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible.utils.display import Display  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils import _coap, _oscore  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._registry_inventory import live_profiles  # noqa: E402

display = Display()

PLUGIN = "nanoedge.core.registry_profiles"
Fetch = t.Callable[[str, float, int], t.Dict[str, t.Any]]


def first_answer(registries: t.Sequence[str], timeout: float, retries: int,
                 fetch: Fetch = _coap.run_fetch_profiles) -> t.Dict[str, t.Any]:
    """The live profiles of the first registry that answers, in the order given."""
    failed = []
    for url in registries:
        try:
            raw = fetch(url, timeout, retries)
        except ValueError as exc:  # a malformed URL is the caller's mistake, not an outage
            raise AnsibleLookupError("%s: %s" % (PLUGIN, exc)) from exc
        except _coap.CoapError as exc:
            failed.append(str(exc))
            display.vvv("%s: %s" % (PLUGIN, exc))
            continue
        profiles, skipped = live_profiles(raw)
        for problem in skipped:
            display.warning("%s: %s: skipping %s" % (PLUGIN, url, problem))
        return {"registry": url, "profiles": profiles, "skipped": skipped, "failed": failed}
    raise AnsibleLookupError("%s: no registry answered: %s" % (PLUGIN, "; ".join(failed)))


class LookupModule(LookupBase):

    def run(self, terms: t.List[t.Any], variables: t.Optional[t.Dict[str, t.Any]] = None,
            **kwargs: t.Any) -> t.List[t.Any]:
        self.set_options(var_options=variables, direct=kwargs)
        registries = [str(term) for term in (terms or [])] + [str(r) for r in self.get_option("registries") or []]
        if not registries:
            raise AnsibleLookupError("%s: no registries given: name at least one coap://host[:port]" % PLUGIN)
        if not _coap.HAS_AIOCOAP:
            raise AnsibleLookupError("%s: the Python library aiocoap is required on the controller (%s)"
                                     % (PLUGIN, _coap.AIOCOAP_IMPORT_ERROR))
        timeout = self.get_option("timeout")
        retries = self.get_option("retries")
        if timeout <= 0 or retries < 0:
            raise AnsibleLookupError("%s: timeout must be > 0 and retries >= 0, got %r and %r"
                                     % (PLUGIN, timeout, retries))
        credentials = self.get_option("oscore_credentials")
        fetch = _coap.run_fetch_profiles
        if credentials:
            missing = _oscore.oscore_missing()
            if missing:
                raise AnsibleLookupError("%s: oscore_credentials needs aiocoap's oscore extra on the controller, missing: %s"
                                         " (pip install 'aiocoap[oscore]')" % (PLUGIN, ", ".join(missing)))
            fetch = functools.partial(_coap.run_fetch_profiles, oscore_credentials=credentials)
        # profiles were written by the nodes: never let them be templated
        return [wrap_var(first_answer(registries, timeout, retries, fetch))]
