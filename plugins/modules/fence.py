#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: fence
short_description: Refuse a change from a manager whose leadership term is below the highest this node has seen
version_added: 0.1.0
description:
  - Fencing at the nodes. Every change a reconcile run makes on a node carries the term of the manager's leadership;
    a manager that lost its majority has a lower term than the one that won it, so a node that has seen the higher
    term refuses the stale manager's changes, even before that manager notices it lost.
  - The highest term the node has seen is the higher of the term recorded in the fence file O(path) and the
    C(highest_term) of the witness file O(witness_path) (the highest term the node's agent ever granted). A missing
    file counts as term 0.
  - 'O(term) below it fails, with a message naming both terms, for example C(nanoedge.core.fence: refused the change
    from manager m1 at term 7: this node has seen term 9 (manager m2)). O(term) equal to it is accepted and
    changes nothing (unless another manager is recorded at that term, which is refused: a term belongs to one
    manager). O(term) above the recorded one is recorded in the fence file with O(manager) (changed).'
  - The check and the write happen under an exclusive lock (C(flock)) on the file O(path) with C(.lock) appended,
    so two fenced runs on the node are serialised and a lower term that comes second is refused. The fence file is
    replaced atomically (written beside it, synced to disk, renamed), mode C(0644); its folder is created
    (C(0755)) when missing.
  - A fence or witness file that is not a JSON object, or whose term is not an integer from 0 (witness) or 1
    (fence) to 2**53, fails the task naming the file and what is wrong, accepts no term, and is left as it is.
  - The file formats are in C(docs/contracts.md) ("Fencing"). The role C(nanoedge.core.deploy) runs this module
    first on each node and again before it stops or removes anything, when the run carries C(nanoedge_fence_term).
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
attributes:
  check_mode:
    support: full
    details:
      - Decides on the files as they are and reports whether the term would be recorded; writes nothing (not even
        the lock file or the folder). A refusal fails in check mode too.
  diff_mode:
    support: full
    details:
      - The fence file's term and manager before and after.
  idempotent:
    support: full
    details:
      - A second run with the same term records nothing.
options:
  term:
    description: The term of the manager's leadership that this change is made under, from 1 to 2**53.
    type: int
    required: true
  manager:
    description: The name of the manager making the change (its inventory name), recorded with the term.
    type: str
    required: true
  path:
    description: The fence file.
    type: path
    default: /var/lib/nanoedge/fence.json
  witness_path:
    description:
      - The witness file the node's agent keeps (C(witness.json) in its state folder). A missing file counts as term 0,
        as on a node without the agent.
    type: path
    default: /var/lib/nanoedge-agent/witness.json
notes:
  - The lock makes check-and-record atomic against other fenced runs on the node; it does not hold the node for the
    rest of the run. That is why the role runs the fence again right before anything is stopped or removed.
"""

EXAMPLES = r"""
- name: Refuse this run's changes if the node has seen a newer manager
  nanoedge.core.fence:
    term: "{{ nanoedge_fence_term }}"
    manager: "{{ nanoedge_fence_manager }}"

- name: Fence with files elsewhere
  nanoedge.core.fence:
    term: 9
    manager: m1
    path: /srv/nanoedge/fence.json
    witness_path: /srv/nanoedge-agent/witness.json
"""

RETURN = r"""
term:
  description: The term of this change, now the highest the node has seen.
  returned: success
  type: int
  sample: 9
manager:
  description: The manager of this change.
  returned: success
  type: str
  sample: m1
fence_file:
  description: The fence file (O(path)).
  returned: always
  type: str
  sample: /var/lib/nanoedge/fence.json
previous_term:
  description: The term the fence file held before this run (0 when there was no fence file).
  returned: success
  type: int
  sample: 7
previous_manager:
  description: The manager the fence file named before this run (null when there was no fence file).
  returned: success
  type: str
  sample: m2
witness_term:
  description: The C(highest_term) of the witness file (0 when there is none).
  returned: success
  type: int
  sample: 9
highest_term:
  description: The highest term the node had seen before this run; on a refusal, the term that refused it.
  returned: success or refused
  type: int
  sample: 9
"""

import json  # noqa: E402
import typing as t  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._fence import (  # noqa: E402
    DEFAULT_PATH, DEFAULT_WITNESS_PATH, FenceError, FenceRefused, Seen, check_and_record)

PREFIX = "nanoedge.core."


def _record(seen: t.Optional[Seen]) -> str:
    return "" if seen is None else json.dumps({"term": seen.term, "manager": seen.manager}, indent=2) + "\n"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            term=dict(type="int", required=True),
            manager=dict(type="str", required=True),
            path=dict(type="path", default=DEFAULT_PATH),
            witness_path=dict(type="path", default=DEFAULT_WITNESS_PATH),
        ),
        supports_check_mode=True,
    )
    params = module.params
    term, manager, path = params["term"], params["manager"], params["path"]
    try:
        found = check_and_record(path, params["witness_path"], term, manager, check_mode=module.check_mode)
    except FenceRefused as exc:
        module.fail_json(msg=PREFIX + str(exc), fence_file=path, highest_term=exc.highest)
    except FenceError as exc:
        module.fail_json(msg=PREFIX + str(exc), fence_file=path)
    result: t.Dict[str, t.Any] = dict(
        changed=found.changed, term=term, manager=manager, fence_file=path,
        previous_term=found.previous.term if found.previous else 0,
        previous_manager=found.previous.manager if found.previous else None,
        witness_term=found.witness.term, highest_term=found.highest.term)
    if module._diff:
        after = Seen(term, manager) if found.changed else found.previous
        result["diff"] = {"before_header": path, "after_header": path,
                          "before": _record(found.previous), "after": _record(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
