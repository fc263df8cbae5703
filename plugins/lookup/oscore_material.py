# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: oscore_material
author:
  - nanoedge.core contributors (!UNKNOWN)
short_description: The OSCORE security contexts of manager-peer pairs, generated once on the controller
version_added: 0.2.0
description:
  - For each peer in the terms, the two halves of the OSCORE (RFC 8613) security context it shares with
    O(manager)'s profile registry, in aiocoap's C(settings.json) form.
  - The pair's master secret is generated the first time it is asked for and kept in
    C(<directory>/<manager>/<peer>.secret) (folders mode 0700, files 0600); later runs read it back.
    Delete such a file, a manager's folder or the whole folder to rotate the keys (docs/user-guide.md, "Security").
  - The roles C(nanoedge.core.registry), C(nanoedge.core.agent) and C(nanoedge.core.reconcile) use it; there is
    seldom a reason to call it directly.
options:
  _terms:
    description:
      - The peers, each a node name, optionally followed by C(+tag) for a second holder that speaks for the
        same node with keys of its own (C(w1+controller)).
    type: list
    elements: str
    required: true
  manager:
    description: The manager whose registry the contexts are for (its inventory name; also the OSCORE id context).
    type: str
    required: true
  directory:
    description: The controller's folder for the key material (an absolute path).
    type: path
    required: true
notes:
  - Runs on the controller; the secrets never leave it except in the contexts the roles write, with C(no_log).
seealso:
  - plugin: nanoedge.core.registry_profiles
    plugin_type: lookup
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the target.
    support: full
    details: A missing secret is generated in check mode too, so that the contexts can be shown as they will be.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run in diff mode.
    support: N/A
  idempotent:
    description: When run twice in a row with the same arguments, the second run reports no change.
    support: full
    details: The second run reads the secrets the first one generated.
"""

EXAMPLES = r"""
- name: The context w1 shares with m1's registry, as the worker holds it
  ansible.builtin.copy:
    content: "{{ (query('nanoedge.core.oscore_material', 'w1', manager='m1', directory='/home/me/.nanoedge/oscore')
                  | first).client | to_nice_json }}"
    dest: /var/lib/nanoedge-agent/oscore/m1/settings.json
    mode: "0600"
  no_log: true
"""

RETURN = r"""
_raw:
  description: One dictionary per peer, in the order given.
  type: list
  elements: dict
  contains:
    manager:
      description: O(manager).
      type: str
      sample: m1
    name:
      description: The peer.
      type: str
      sample: w1
    id:
      description: The peer's OSCORE id in hex (the first 6 bytes of the SHA-256 of its name).
      type: str
      sample: 0b7c4a4c5e3f
    server:
      description: The manager's half, C(settings.json) of the context its registry holds for the peer.
      type: dict
      sample: {"sender-id_hex": "", "recipient-id_hex": "0b7c4a4c5e3f", "secret_hex": "...", "salt_hex": "", "id-context_ascii": "m1"}
    client:
      description: The peer's half, C(settings.json) of the context it uses for the manager's registry.
      type: dict
      sample: {"sender-id_hex": "0b7c4a4c5e3f", "recipient-id_hex": "", "secret_hex": "...", "salt_hex": "", "id-context_ascii": "m1"}
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._oscore_material import MaterialError, pair_material  # noqa: E402

PLUGIN = "nanoedge.core.oscore_material"


class LookupModule(LookupBase):

    def run(self, terms: t.List[t.Any], variables: t.Optional[t.Dict[str, t.Any]] = None,
            **kwargs: t.Any) -> t.List[t.Any]:
        self.set_options(var_options=variables, direct=kwargs)
        manager = self.get_option("manager")
        directory = self.get_option("directory")
        try:
            return [pair_material(directory, manager, peer) for peer in terms]
        except MaterialError as exc:
            raise AnsibleLookupError("%s: %s" % (PLUGIN, exc)) from exc
