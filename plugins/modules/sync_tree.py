#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: sync_tree
short_description: Keep a folder on a node equal to a folder on the controller, in one round trip
version_added: 0.1.0
description:
  - Makes O(dest) on the node hold exactly the files and folders of O(src) on the controller (or the O(files) picked
    from it), with the same contents, the file modes of O(src) (or O(mode)), O(directory_mode) on every folder, and
    O(owner) and O(group). Files in O(dest) that O(src) does not have are removed.
  - The controller sends a manifest (path, mode, size and SHA-256 of every file); the node compares it with O(dest) in
    one module run. Only when they differ are the files sent, as one archive, so an unchanged folder of any size costs
    one round trip where M(ansible.builtin.copy) costs one per file.
  - The new folder is built beside O(dest) (so the folder above O(dest) must be writable, with room for a second copy),
    every file is checked against the manifest, and the two are swapped in one step (Linux C(renameat2)
    C(RENAME_EXCHANGE); where the kernel or file system cannot, two renames with a moment in between when O(dest) is
    missing). O(dest) is never half-written, and on any error it stays as it was.
  - Used by the collection's roles for wheels, code and service programs they install on nodes.
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.attributes.action
attributes:
  action:
    support: full
    details:
      - The action plugin reads O(src) on the controller and sends the archive only when the node's folder differs.
  check_mode:
    support: full
    details:
      - Compares and reports what would change; sends and writes nothing.
  diff_mode:
    support: full
    details:
      - Lists the files and folders that would be added, removed and changed.
  idempotent:
    support: full
options:
  src:
    description:
      - The folder on the controller. A relative path is looked up as M(ansible.builtin.copy) does (the role's
        C(files/), then the playbook's).
      - Links to files are followed; links to folders and special files are refused.
    type: path
    required: true
  dest:
    description:
      - The folder on the node. It is created, with its parents, when missing; it must not be a file or a link.
      - The folder belongs to this task; anything in it that O(src) does not have is removed.
    type: path
    required: true
  files:
    description:
      - Only these files of O(src), as paths relative to it (their folders come along). Default is every file under
        O(src) not matched by O(exclude).
    type: list
    elements: str
  exclude:
    description:
      - Shell patterns of names or relative paths under O(src) to leave out; a folder that matches is left out whole.
        Ignored for O(src) when O(files) is given.
      - What matches in O(dest) is not compared either (a byte-code cache written on the node is no change), and is
        dropped when the folder is replaced.
    type: list
    elements: str
    default: []
  mode:
    description:
      - The permissions of every file, in octal (V('0644')). Default is each file's own permission bits in O(src).
    type: raw
  directory_mode:
    description: The permissions of O(dest) and every folder in it, in octal.
    type: raw
    default: '0755'
  owner:
    description: The user that owns every file and folder. Default is the user the module runs as.
    type: str
  group:
    description: The group that owns every file and folder. Default is that user's group.
    type: str
  _manifest:
    description:
      - Internal, set by the action plugin to the manifest of O(src); a task that sets it fails.
    type: raw
  _archive:
    description:
      - Internal, set by the action plugin to the archive it sent to the node; a task that sets it fails.
    type: path
notes:
  - The comparison reads every file of O(dest), which is fast for the folders this is made for (code, wheels, a few
    tens of megabytes), and notices a file edited on the node.
seealso:
  - module: ansible.builtin.copy
  - module: ansible.posix.synchronize
"""

EXAMPLES = r"""
- name: Copy the wheels the agent installs from
  nanoedge.core.sync_tree:
    src: "{{ nanoedge_wheels_dir }}/"
    dest: /opt/nanoedge-agent/wheels
    mode: "0644"
    owner: root
    group: root

- name: Copy two files of a folder, and nothing else
  nanoedge.core.sync_tree:
    src: "{{ playbook_dir }}/files/wheels"
    dest: /opt/nanoedge/wheels
    files: [aiocoap-0.4.17-py3-none-any.whl, cbor2-5.6.5-py3-none-any.whl]
    mode: "0644"

- name: Copy the services' programs, keeping their modes, without the controller's byte code
  nanoedge.core.sync_tree:
    src: services
    dest: /opt/nanoedge/services
    exclude: [__pycache__, "*.pyc"]
"""

RETURN = r"""
dest:
  description: The folder on the node.
  returned: always
  type: str
  sample: /opt/nanoedge-agent/wheels
files:
  description: How many files the folder holds (or would hold, in check mode).
  returned: always
  type: int
  sample: 11
added:
  description: Paths relative to O(dest) that were missing (C(.) is O(dest) itself).
  returned: always
  type: list
  elements: str
  sample: [aiocoap-0.4.17-py3-none-any.whl]
removed:
  description: Paths relative to O(dest) that O(src) does not have.
  returned: always
  type: list
  elements: str
  sample: [aiocoap-0.4.7-py3-none-any.whl]
changed_paths:
  description: Paths relative to O(dest) whose contents, mode or owner differed.
  returned: always
  type: list
  elements: str
  sample: [_coap.py]
"""

import grp  # noqa: E402
import pwd  # noqa: E402
import typing as t  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._tree import (  # noqa: E402
    TreeError, differences, parse_mode, replace)

PREFIX = "nanoedge.core.sync_tree: "


def _ids(owner: t.Optional[str], group: t.Optional[str]) -> t.Tuple[t.Optional[int], t.Optional[int]]:
    uid = gid = None
    if owner:
        try:
            uid = int(owner) if owner.isdigit() else pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise TreeError("owner %s is not a user on this node" % owner) from None
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise TreeError("group %s is not a group on this node" % group) from None
    return uid, gid


def _diff(dest: str, found: t.Dict[str, t.List[str]]) -> t.Dict[str, str]:
    lines = ["%s %s" % (sign, path) for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed"))
             for path in found[key]]
    return {"before_header": dest, "after_header": dest, "before": "", "after": "\n".join(lines) + "\n"}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            files=dict(type="list", elements="str"),
            exclude=dict(type="list", elements="str", default=[]),
            mode=dict(type="raw"),
            directory_mode=dict(type="raw", default="0755"),
            owner=dict(type="str"),
            group=dict(type="str"),
            # set by the action plugin: the controller's manifest, then the archive it sent
            _manifest=dict(type="raw"),
            _archive=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    dest = params["dest"]
    if params["_manifest"] is None:
        module.fail_json(msg=PREFIX + "run through the action plugin, which sends the manifest of src")
    try:
        directory_mode = parse_mode(params["directory_mode"], "directory_mode")
        directory_mode = 0o755 if directory_mode is None else directory_mode
        uid, gid = _ids(params["owner"], params["group"])
        found = differences(dest, params["_manifest"], directory_mode, uid, gid, params["exclude"])
        changed = any(found.values())
        result: t.Dict[str, t.Any] = dict(
            changed=changed, dest=dest, files=sum(1 for e in params["_manifest"] if e.get("type") == "file"),
            added=found["added"], removed=found["removed"], changed_paths=found["changed"])
        if changed and module._diff:
            result["diff"] = _diff(dest, found)
        if changed and not module.check_mode:
            if not params["_archive"]:
                # the action plugin sends the archive and runs the module again
                result["needs_archive"] = True
            else:
                replace(dest, params["_archive"], params["_manifest"], directory_mode, uid, gid)
    except (TreeError, OSError) as exc:
        module.fail_json(msg=PREFIX + str(exc), dest=dest)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
