#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: coap_report
short_description: Report a node's resource profile to CoAP profile registries
version_added: 0.1.0
description:
  - Sends the node's resource profile (as built by M(nanoedge.core.resource_facts)) to one or more
    CoAP profile registries (role R(nanoedge.core.registry,ansible_collections.nanoedge.core.registry_role)),
    C(PUT /profiles/{node}), as JSON or CBOR, block-wise in 1024-byte blocks when the body is larger than one block.
  - Before writing, the module reads the registry's stored copy (C(GET /profiles/{node})) and compares it with
    the profile. The task reports C(changed) only when a registry's copy differed (or was absent); measurements
    that move on every run (O(ignore_changes)) do not count.
  - A registry keeps a profile only for its lease (O(lifetime)). An unchanged profile is therefore sent again to
    renew the lease (O(renew)); that renewal is not a change.
  - All registries are contacted at the same time. Each request is retried with exponential backoff and jitter
    when no answer arrives within O(timeout) or the registry answers 5.xx, 4.08 or 4.29. Other 4.xx answers
    are final.
  - The task succeeds when at least O(min_acks) registries stored the profile, and otherwise fails with each
    registry's error.
  - Runs on the node itself and needs the Python library aiocoap there; role R(nanoedge.core.agent,ansible_collections.nanoedge.core.agent_role)
    installs it in a virtual environment.
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.attributes.action
attributes:
  action:
    support: full
    details:
      - The action plugin fills in O(profile) from the host's facts when it is not given.
  check_mode:
    support: full
    details:
      - Reads every registry's stored copy and predicts the change; writes nothing.
  diff_mode:
    support: full
    details:
      - Shows, for every registry whose copy differs, the stored profile and the new one.
  idempotent:
    support: full
    details:
      - The renewing C(PUT) of an unchanged profile refreshes the lease and is reported as no change.
options:
  profile:
    description:
      - The resource profile to report (C(docs/contracts.md), "The profile").
      - Default is the host's fact C(ansible_facts.nanoedge_profile), set by M(nanoedge.core.resource_facts).
      - The profile is validated before anything is sent; its C(node) names the registry resource.
    type: dict
  registries:
    description:
      - The registries to report to, each C(coap://host) or C(coap://host:port) (default port 5683).
    type: list
    elements: str
    required: true
  format:
    description:
      - Content format of the body, V(json) (CoAP content format 50) or V(cbor) (60, smaller on the wire).
    type: str
    choices: [json, cbor]
    default: json
  lifetime:
    description:
      - Lease in seconds (C(?lt=)); the registry forgets the profile this long after the last report.
      - When not set, the registry's default lease applies.
    type: int
  timeout:
    description:
      - Seconds to wait for the answer to one request (a block-wise transfer counts as one request).
    type: float
    default: 5
  retries:
    description:
      - How many more times a failed attempt is repeated for each registry.
      - The wait before attempt N+1 is between half and all of min(8, 0.5 * 2^N) seconds.
    type: int
    default: 4
  min_acks:
    description:
      - How many registries must have stored the profile for the task to succeed.
      - In check mode, how many registries must have answered.
      - V(0) never fails on registry errors.
    type: int
    default: 1
  renew:
    description:
      - Send an unchanged profile again to renew its lease and refresh the measurements the registry holds.
      - With V(false) an unchanged profile is not sent; use it only when something else (the agent) keeps the lease.
    type: bool
    default: true
  ignore_changes:
    description:
      - Dotted paths of profile fields whose difference alone does not count as a change.
    type: list
    elements: str
    default: [collected_at, cpu.load1, memory_mb.available, storage_mb.free]
  oscore_context:
    description:
      - Folder of an aiocoap file-based OSCORE security context (C(settings.json)) that protects every request.
      - Needs aiocoap's C(oscore) extra on the node. The folder must be writable (aiocoap keeps its sequence number there)
        and must belong to this node alone; never copy a context.
      - Mutually exclusive with O(oscore_credentials).
    type: path
  oscore_credentials:
    description:
      - An aiocoap credentials file (JSON) naming one OSCORE security context per registry,
        mapping each URI pattern C(coap://HOST:PORT/*) to an C(oscore) entry with the C(basedir) of its context;
        a relative C(basedir) is taken from the file's folder.
      - Every registry in O(registries) must have a context; a registry without one fails, it is never written unprotected.
      - C(nanoedge.core.site) passes the file the C(nanoedge.core.registry) role provisions on the controller
        for each worker (docs/user-guide.md, "Security").
      - Needs aiocoap's C(oscore) extra; when a library of it is missing the module fails naming it.
    type: path
    version_added: 0.2.0
requirements:
  - aiocoap (on the node); aiocoap[oscore] (cbor2, cryptography, filelock) with O(oscore_context) or O(oscore_credentials)
notes:
  - The comparison reads the registry's stored copy and compares content, because the registry's ETag is opaque.
  - When a registry refuses to show its copy (4.01 or 4.03, reads restricted to managers), there is nothing to compare
    with; the profile is sent and reported as changed.
seealso:
  - module: nanoedge.core.resource_facts
  - plugin: nanoedge.core.registry
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Discover the node's resources
  nanoedge.core.resource_facts:

- name: Report the profile to every manager
  nanoedge.core.coap_report:
    registries: "{{ groups['managers'] | map('extract', hostvars, 'ansible_host') | map('regex_replace', '^', 'coap://') }}"
    lifetime: 900

- name: Report a given profile as CBOR; both managers must store it
  nanoedge.core.coap_report:
    profile: "{{ ansible_facts.nanoedge_profile }}"
    registries:
      - coap://10.0.0.1
      - coap://10.0.0.2:5683
    format: cbor
    min_acks: 2
    retries: 8

- name: Report over OSCORE
  nanoedge.core.coap_report:
    registries: [coap://10.0.0.1]
    oscore_context: /var/lib/nanoedge-agent/oscore
"""

RETURN = r"""
node:
  description: The node the profile describes.
  returned: always
  type: str
  sample: w4
size:
  description: Size of the encoded body in bytes.
  returned: always
  type: int
  sample: 498
stored:
  description: How many registries hold the profile now (in check mode, how many answered).
  returned: always
  type: int
  sample: 2
registries:
  description: What happened at each registry, in the order of O(registries).
  returned: always
  type: list
  elements: dict
  contains:
    registry:
      description: The registry as given.
      type: str
      sample: coap://10.0.0.1
    stored:
      description: Whether the registry holds this profile now.
      type: bool
      sample: true
    changed:
      description: Whether the registry's copy differed (or was absent).
      type: bool
      sample: false
    action:
      description:
        - V(created), V(updated), V(renewed) (unchanged, lease renewed), V(unchanged) (not sent),
          V(would_create), V(would_update) (check mode) or V(failed).
      type: str
      sample: renewed
    code:
      description: The answer to the C(PUT), when one was sent.
      type: str
      sample: 2.04 Changed
    etag:
      description: The ETag of the stored representation, hex, when the registry sent one.
      type: str
      sample: 5d41402abc4b2a76
    attempts:
      description: How many attempts it took.
      type: int
      sample: 1
    error:
      description: Why the registry did not store the profile (V(null) when it did).
      type: str
      sample: "coap://10.0.0.2: no answer within 5s (gave up after 5 attempts)"
"""

import traceback  # noqa: E402
import typing as t  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils import _coap, _oscore  # noqa: E402
from ansible_collections.nanoedge.core.plugins.module_utils._profile import ProfileError  # noqa: E402

NAME = "nanoedge.core.coap_report"


def argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        profile=dict(type="dict"),
        registries=dict(type="list", elements="str", required=True),
        format=dict(type="str", choices=list(_coap.FORMATS), default="json"),
        lifetime=dict(type="int"),
        timeout=dict(type="float", default=5.0),
        retries=dict(type="int", default=4),
        min_acks=dict(type="int", default=1),
        renew=dict(type="bool", default=True),
        ignore_changes=dict(type="list", elements="str", default=list(_coap.DEFAULT_IGNORE)),
        oscore_context=dict(type="path"),
        oscore_credentials=dict(type="path"),
    )


def check_params(params: t.Dict[str, t.Any]) -> t.Optional[str]:
    """Why the parameters cannot work, or None."""
    if params["profile"] is None:
        return "no profile: pass profile, or run nanoedge.core.resource_facts first"
    if not params["registries"]:
        return "registries is empty: give at least one coap://host[:port]"
    for url in params["registries"]:
        try:
            _coap.parse_registry(url)
        except ValueError as exc:
            return str(exc)
    if len(set(params["registries"])) != len(params["registries"]):
        return "registries lists the same registry twice"
    if params["timeout"] <= 0:
        return "timeout must be > 0, got %s" % params["timeout"]
    if params["retries"] < 0:
        return "retries must be >= 0, got %d" % params["retries"]
    if not 0 <= params["min_acks"] <= len(params["registries"]):
        return "min_acks must be from 0 to the number of registries (%d), got %d" % (
            len(params["registries"]), params["min_acks"])
    lifetime = params["lifetime"]
    if lifetime is not None and not 1 <= lifetime <= _coap.LIFETIME_MAX:
        return "lifetime must be from 1 to %d seconds, got %d" % (_coap.LIFETIME_MAX, lifetime)
    return None


def build_diff(profile: t.Dict[str, t.Any], outcomes: t.Sequence[_coap.Outcome]) -> t.List[t.Dict[str, t.Any]]:
    node = profile["node"]
    return [
        {"before": outcome.before if outcome.before is not None else {}, "after": profile,
         "before_header": "%s/profiles/%s (stored)" % (outcome.registry, node),
         "after_header": "%s/profiles/%s (reported)" % (outcome.registry, node)}
        for outcome in outcomes if outcome.changed
    ]


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("oscore_context", "oscore_credentials")])
    params = module.params
    problem = check_params(params)
    if problem:
        module.fail_json(msg="%s: %s" % (NAME, problem))
    if not _coap.HAS_AIOCOAP:
        module.fail_json(msg="%s: %s" % (NAME, missing_required_lib("aiocoap", reason="to speak CoAP to the registries")),
                         exception=_coap.AIOCOAP_IMPORT_ERROR)
    missing = _oscore.oscore_missing() if params["oscore_context"] or params["oscore_credentials"] else []
    if missing:
        # never a fall-back to plain CoAP: the registries would refuse it, or worse, accept it
        module.fail_json(msg="%s: %s" % (NAME, missing_required_lib(
            "aiocoap[oscore] (missing: %s)" % ", ".join(missing), reason="to protect the reports with OSCORE")))

    profile = params["profile"]
    settings = _coap.ReportSettings(
        fmt=params["format"], lifetime=params["lifetime"], timeout=params["timeout"], retries=params["retries"],
        renew=params["renew"], check_mode=module.check_mode, ignore=tuple(params["ignore_changes"]),
        oscore_context=params["oscore_context"], oscore_credentials=params["oscore_credentials"],
    )
    try:
        outcomes = _coap.run_report(profile, params["registries"], settings)
        size = len(_coap.encode_profile(profile, params["format"])[0])
    except ProfileError as exc:
        module.fail_json(msg="%s: invalid profile: %s" % (NAME, exc))
    except (ValueError, _coap.CoapError) as exc:
        module.fail_json(msg="%s: %s" % (NAME, exc), exception=traceback.format_exc())

    answered = [o for o in outcomes if o.stored or (module.check_mode and o.action != "failed")]
    result = dict(
        changed=any(o.changed for o in outcomes),
        node=profile["node"],
        size=size,
        stored=len(answered),
        registries=[o.as_result() for o in outcomes],
    )
    if module._diff:
        result["diff"] = build_diff(profile, [o for o in outcomes if o.action != "failed"])
    if len(answered) < params["min_acks"]:
        errors = "; ".join(o.error for o in outcomes if o.error)
        verb = "answered" if module.check_mode else "stored the profile of %s" % profile["node"]
        module.fail_json(msg="%s: %d of %d registries %s, fewer than min_acks=%d: %s" % (
            NAME, len(answered), len(outcomes), verb, params["min_acks"], errors), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
