#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: oscore_contexts
short_description: Keep a folder of OSCORE security contexts on a node as listed, in one round trip
version_added: 0.2.0
description:
  - Writes the OSCORE security contexts (RFC 8613) of the CoAP API's pairs in aiocoap's file-based format under O(path),
    one folder per context with its C(settings.json), and the credentials files that name them, in one module run
    however many contexts there are.
  - A context is compared by its content (the parsed JSON), not its bytes. When its key material changes, the new
    C(settings.json) is written and the C(sequence.json) aiocoap keeps beside it is removed, so a (key, sequence
    number) pair is never used twice. An unchanged context keeps its sequence.
  - Folders are made C(0700) and files C(0600), owned by O(owner) and O(group); each file is replaced whole, never
    half-written.
  - With O(prune), everything under O(path) that is neither a listed context nor a listed credentials file is removed,
    which revokes a peer no longer listed. The files aiocoap keeps in a listed context's folder are never touched.
  - Used by the collection's registry, agent and reconcile roles; the layout is in the collection's
    C(docs/contracts.md), "The CoAP API".
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would change; writes and removes nothing.
  diff_mode:
    support: full
    details:
      - Lists the folders and files that would be written or removed, never their contents (key material).
  idempotent:
    support: full
options:
  path:
    description:
      - The folder of the contexts, created with its parents when missing. It must not be a link.
    type: path
    required: true
  contexts:
    description:
      - The contexts, each a folder under O(path) holding its C(settings.json).
      - The module is never logged on the node, and each context's C(secret_hex) and C(salt_hex) are censored in
        its result.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description:
          - The context's folder relative to O(path), one name or two (V(w1), V(controller/m1)); no C(.) or C(..).
        type: str
        required: true
      settings:
        description:
          - The content of its C(settings.json), in aiocoap's format (C(sender-id_hex), C(recipient-id_hex),
            C(secret_hex), C(salt_hex), C(id-context_ascii)...).
        type: dict
        required: true
  credentials:
    description:
      - Credentials files (aiocoap's format, which context protects which URI) to write under O(path).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file relative to O(path); it must not lie inside a context's folder.
        type: str
        required: true
      content:
        description: The file's JSON content.
        type: dict
        required: true
  owner:
    description: The user that owns every folder and file. Default is the user the module runs as.
    type: str
  group:
    description: The group that owns every folder and file. Default is the group the module runs as.
    type: str
  prune:
    description:
      - Remove everything under O(path) that is not a listed context or credentials file (nor a folder above one).
    type: bool
    default: false
seealso:
  - module: nanoedge.core.sync_tree
  - module: nanoedge.core.coap_report
"""

EXAMPLES = r"""
- name: The registry's side of each peer, revoking the peers no longer listed
  nanoedge.core.oscore_contexts:
    path: /var/lib/nanoedge/registry/oscore
    contexts:
      - path: w1
        settings:
          sender-id_hex: "00"
          recipient-id_hex: "01"
          secret_hex: "{{ w1_secret }}"
          salt_hex: ""
          id-context_ascii: nanoedge
    owner: nanoedge
    group: nanoedge
    prune: true
  notify: Restart nanoedge registry

- name: A client's contexts, one per registry, and the credentials file that names them
  nanoedge.core.oscore_contexts:
    path: /var/lib/nanoedge-agent/oscore
    contexts: "{{ my_contexts }}"
    credentials:
      - path: credentials.json
        content:
          "coap://172.30.0.11:5683/*": {oscore: {basedir: "m1/"}}
"""

RETURN = r"""
path:
  description: The folder of the contexts.
  returned: always
  type: str
  sample: /var/lib/nanoedge/registry/oscore
written:
  description: The contexts whose C(settings.json) was written (or would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [w1, w2]
fresh_sequence:
  description: Of RV(written), the contexts whose key material changed, so their sequence starts afresh.
  returned: always
  type: list
  elements: str
  sample: [w2]
credentials:
  description: The credentials files written.
  returned: always
  type: list
  elements: str
  sample: [credentials.json]
removed:
  description: What O(prune) removed, relative to O(path).
  returned: always
  type: list
  elements: str
  sample: [w9]
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nanoedge.core.plugins.module_utils._oscore_store import StoreError, sync

PREFIX = "nanoedge.core.oscore_contexts: "
SECRET_FIELDS = ("secret_hex", "salt_hex")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            contexts=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                settings=dict(type="dict", required=True),
            )),
            credentials=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="str", required=True),
                content=dict(type="dict", required=True),
            )),
            owner=dict(type="str"),
            group=dict(type="str"),
            prune=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
        no_log=True,  # the contexts hold the master secrets: the invocation is not logged on the node
    )
    params = module.params
    # Censor the key material, not the whole option: the contexts' names and ids stay readable in the result.
    for context in params["contexts"]:
        module.no_log_values.update(value for key, value in context["settings"].items()
                                    if key in SECRET_FIELDS and isinstance(value, str) and value)
    try:
        found = sync(params["path"], params["contexts"], params["credentials"], owner=params["owner"],
                     group=params["group"], prune=params["prune"], check_mode=module.check_mode)
    except StoreError as exc:
        module.fail_json(msg=PREFIX + str(exc), path=params["path"])
    except OSError as exc:
        module.fail_json(msg=PREFIX + "%s: %s" % (exc.filename or params["path"], exc.strerror or exc),
                         path=params["path"])
    result: t.Dict[str, t.Any] = dict(changed=found.changed, path=params["path"], written=found.written,
                                      fresh_sequence=found.reset, credentials=found.credentials,
                                      removed=found.removed)
    if module._diff:
        result["diff"] = {"prepared": found.diff()}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
