# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: image_files
author:
  - nanoedge.core contributors (!UNKNOWN)
short_description: Unpack some folders of an OCI image on the controller, cached by the image digest
version_added: 0.1.0
description:
  - Reads the image O(repository)@O(digest) from the OCI registry O(registry), applies its layers in order and keeps
    the folders O(_terms) (absolute paths in the image), in a folder under O(cache_dir) named after the digest. Returns
    that folder, with the image's paths below it (V(/opt/nanoedge/service) is C(RESULT/opt/nanoedge/service)).
  - The role C(nanoedge.core.deploy) installs a bare-metal service's program and libraries from its image this way,
    then sends them to the node with M(nanoedge.core.sync_tree).
  - Every layer is checked against the size and digest its manifest gives, and none larger than O(max_bytes) is
    read. A layer is untrusted; an entry with an absolute path or C(..), a link that leaves the folder and an entry
    written through a link fail the lookup, naming the layer and the entry. Whiteouts (C(.wh.NAME),
    C(.wh..wh..opq)) remove what lower layers put there. Devices and FIFOs are left out, hard links become copies.
  - A digest names content that never changes, so a folder once unpacked is used as it is, without asking the
    registry; a layer that holds none of the paths is remembered and not downloaded again.
options:
  _terms:
    description: The folders of the image to unpack, as absolute paths (V(/opt/nanoedge/service)).
    type: list
    elements: str
    required: true
  registry:
    description: The registry, as V(http://host:port) or V(https://host:port). Without a scheme HTTPS is used.
    type: str
    required: true
  repository:
    description: The image's repository in the registry (V(nanoedge/spo2)).
    type: str
    required: true
  digest:
    description:
      - The digest of the image's manifest or index (V(sha256:...)), as the service_profiles lookup returns it.
        A tag is not accepted, since the cache is valid only for content that cannot change.
    type: str
    required: true
  platform:
    description:
      - With a multi-platform image, the platform to read (V(linux/arm64)). Empty reads the first one the index lists.
    type: str
    default: ""
  cache_dir:
    description: The folder on the controller that keeps the unpacked images.
    type: path
    default: ~/.cache/nanoedge/images
  max_bytes:
    description: The largest layer read, and the most bytes unpacked from one image.
    type: int
    default: 1073741824
  timeout:
    description: Seconds to wait for each connection and answer.
    type: float
    default: 30
notes:
  - Runs on the controller. Only the standard library is needed.
  - >-
    Every error starts with C(nanoedge.core.image_files:) and names the image and what is at fault, for example
    C(image HOST/REPOSITORY@DIGEST: layer sha256:...: entry 'a/../../etc/passwd' leaves the image ('..')) or
    C(image HOST/REPOSITORY@DIGEST: the image has no /opt/nanoedge/service).
seealso:
  - plugin: nanoedge.core.service_profiles
    plugin_type: lookup
  - module: nanoedge.core.sync_tree
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.oci_registry
attributes:
  check_mode:
    support: full
    details:
      - Changes nothing on any node; the controller's cache is filled in check mode too.
  diff_mode:
    support: N/A
    details:
      - A lookup changes nothing on a node.
  idempotent:
    support: full
    details:
      - The same digest gives the same folder, with the same contents.
"""

EXAMPLES = r"""
- name: Unpack the program and the library of the spo2 image
  ansible.builtin.set_fact:
    spo2_files: >-
      {{ lookup('nanoedge.core.image_files', '/opt/nanoedge/service', '/opt/nanoedge/lib/nanoedge_ns',
                registry='http://127.0.0.1:5000', repository='nanoedge/spo2', digest=spo2.digest) }}

- name: Send them to the node
  nanoedge.core.sync_tree:
    src: "{{ spo2_files }}/opt/nanoedge/"
    dest: /opt/nanoedge/services/spo2
"""

RETURN = r"""
_raw:
  description: The folder on the controller that holds the paths, as one string.
  type: list
  elements: str
  sample: ["/home/ci/.cache/nanoedge/images/sha256-6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b.3f2a9c1d0e4b"]
"""

import os  # noqa: E402
import typing as t  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._oci import RegistryClient  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_http import OciError  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_layers import unpack  # noqa: E402
from ansible_collections.nanoedge.core.plugins.plugin_utils._oci_select import validate_repository  # noqa: E402

PLUGIN = "nanoedge.core.image_files"


class LookupModule(LookupBase):

    def run(self, terms: t.List[t.Any], variables: t.Optional[t.Dict[str, t.Any]] = None,
            **kwargs: t.Any) -> t.List[t.Any]:
        self.set_options(var_options=variables, direct=kwargs)
        paths = [str(term) for term in terms or []]
        if not paths:
            raise AnsibleLookupError("%s: name at least one folder of the image to unpack" % PLUGIN)
        registry, repository, digest = (str(self.get_option(name) or "") for name in ("registry", "repository", "digest"))
        image = "%s/%s@%s" % (registry.split("://", 1)[-1], repository, digest)
        try:
            validate_repository(repository)
            client = RegistryClient(registry, username=self.get_option("username") or None,
                                    password=self.get_option("password") or None, timeout=self.get_option("timeout"),
                                    validate_certs=self.get_option("validate_certs"),
                                    ca_path=self.get_option("ca_path") or None)
        except ValueError as exc:
            raise AnsibleLookupError("%s: %s" % (PLUGIN, exc)) from exc
        cache_dir = os.path.expanduser(str(self.get_option("cache_dir")))
        try:
            folder = unpack(client, repository, digest, image, paths, cache_dir,
                            platform=self.get_option("platform") or None, max_bytes=self.get_option("max_bytes"))
        except OciError as exc:
            raise AnsibleLookupError("%s: %s" % (PLUGIN, exc)) from exc
        except ValueError as exc:
            raise AnsibleLookupError("%s: image %s: %s" % (PLUGIN, image, exc)) from exc
        except OSError as exc:
            raise AnsibleLookupError("%s: cannot unpack image %s into %s: %s" % (PLUGIN, image, cache_dir, exc)) from exc
        finally:
            client.close()
        return [folder]
