# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: service_profiles
author:
  - nanoedge.core contributors (!UNKNOWN)
short_description: Discover nanoservices and their requirements from OCI registry image metadata
version_added: 0.1.0
description:
  - Lists nanoservice images in an OCI registry (CNCF distribution, Harbor, any OCI Distribution API v2 registry)
    and returns one service profile per image, in the shape of the collection's service requirement contract
    (the input of the P(nanoedge.core.allocate#filter) filter).
  - Requirements are read from the image label O(requirements_label) (JSON), from JSON in the OCI annotation
    O(annotation) (O(source=annotation)), or from the description of a Docker Hub-style repository (O(source=hub)).
    They are validated with the same schema the P(nanoedge.core.allocate#filter) filter uses; unknown keys,
    values of the wrong type and negative numbers are errors that name the key and the image.
  - Each profile also holds the whole service description (RV(_raw[].description)), read from the image label
    O(description_label) and validated with the one service description schema, which C(tools/nanoservices.py)
    writes from the service's C(service.json). The role C(nanoedge.core.deploy) runs a service from it alone.
    Labels that repeat part of it (O(requirements_label), O(service_label)) must say the same.
  - An image without that label (labelled with O(requirements_label) and O(service_label) only, as images were
    before) still gives a profile; its description holds its name and requirements, its version and description
    text (the OCI labels C(org.opencontainers.image.version) and C(org.opencontainers.image.description)), its port
    when it exposes exactly one, and the schema's defaults for everything else.
  - Multi-architecture images (Docker manifest list, OCI index) are read per platform; every platform must carry
    the same requirements, and RV(_raw[].platforms) lists them.
  - Requests run concurrently (O(concurrency)). What was read is cached by manifest digest for the lookup, and
    across runs in O(cache_path), so a repeated lookup of unchanged images costs one HEAD request per image.
  - Returns a single list of services (already wrapped, so C(lookup) returns the list itself and
    C(query) returns a one-element list holding it).
  - An image that cannot be used (missing or invalid label, missing tag or manifest, platforms that disagree)
    is handled by O(on_error). Network, TLS and authentication failures and registry server errors always fail
    the lookup; the message names the registry and the repository.
options:
  _terms:
    description:
      - Repositories to read, added to O(repositories). Same syntax as O(repositories).
    type: list
    elements: str
    required: false
  registry:
    description:
      - The registry, as V(http://host:port) or V(https://host:port). Without a scheme HTTPS is used.
      - With O(source=hub), the base URL of the Docker Hub-style API (for Docker Hub V(https://hub.docker.com)).
    type: str
    required: true
  repositories:
    description:
      - Repository names (V(nanoedge/spo2)) or globs (V(nanoedge/*)). C(*) and C(?) match within one path
        component, C(**) across components, C([...]) a character class.
      - A glob needs the catalog API (C(/v2/_catalog), read page by page); many registries disable it, so name
        the repositories when you can.
      - An entry may pin a tag (V(nanoedge/spo2:1.0)); that tag is used instead of O(tag_policy).
      - Empty means every repository in the catalog.
    type: list
    elements: str
    default: []
  source:
    description:
      - Where the requirements come from.
      - V(label) reads the image config label O(requirements_label).
      - V(annotation) reads JSON from the annotation O(annotation) of the index or manifest, falling back to a
        config label of the same name (what C(docker build --label) writes). Prose around the JSON object is allowed.
      - V(hub) reads JSON from the repository's C(full_description) (else C(description)) through the
        Docker Hub repository API C(/v2/repositories/{namespace}/{name}/), as the research prototype did.
    type: str
    choices: [label, annotation, hub]
    default: label
  requirements_label:
    description: The image label holding the requirements as a JSON object.
    type: str
    default: io.nanoedge.requirements
  service_label:
    description:
      - The image label holding the service name. Without it the name is the one in the service description, or the
        last component of the repository.
      - Set to an empty string to always use the repository name.
    type: str
    default: io.nanoedge.service
  description_label:
    description:
      - The image label holding the whole service description as a JSON object. Where O(requirements_label) is
        missing, the requirements come from it.
      - Set to an empty string to read no description (every image is then read as one labelled the older way).
    type: str
    default: io.nanoedge.description
  annotation:
    description: The annotation read with O(source=annotation).
    type: str
    default: org.opencontainers.image.description
  tag_policy:
    description:
      - Which tag of each repository to read.
      - V(latest) reads C(latest); V(fixed) reads O(tag); V(semver) lists the tags and reads the highest
        semantic version (C(1.2.3) or C(v1.2.3); pre-releases only with O(include_prerelease)).
    type: str
    choices: [latest, fixed, semver]
    default: latest
  tag:
    description: The tag read with O(tag_policy=fixed).
    type: str
    default: latest
  include_prerelease:
    description: With O(tag_policy=semver), consider pre-release tags such as C(2.0.0-rc.1).
    type: bool
    default: false
  on_error:
    description:
      - What to do with an image that cannot be used.
      - V(fail) fails the lookup with every such image and its reason; V(warn) leaves the image out with a
        warning; V(skip) leaves it out silently.
    type: str
    choices: [fail, warn, skip]
    default: fail
  timeout:
    description: Seconds to wait for each connection and answer.
    type: float
    default: 10
  concurrency:
    description: How many images are read at the same time.
    type: int
    default: 8
  catalog_page_size:
    description: Entries asked for per catalog page (the C(n) parameter).
    type: int
    default: 100
  cache_path:
    description:
      - A JSON file that keeps image metadata by manifest digest between runs. Without it the cache lives
        for one lookup.
    type: path
  hub_image_registry:
    description: With O(source=hub), the registry written in RV(_raw[].image).
    type: str
    default: docker.io
notes:
  - Runs on the controller. Only the standard library is needed.
  - Every error starts with C(nanoedge.core.service_profiles:) and names what is at fault.
  - >-
    A problem with one image starts with C(image REGISTRY/REPOSITORY:TAG:) and gives the reason, for example
    C(label io.nanoedge.requirements is missing), C(label io.nanoedge.requirements is not valid JSON),
    C(label io.nanoedge.requirements must be a JSON object, got an array),
    C(label io.nanoedge.requirements: unknown requirement key) with the key and the known keys,
    C(label io.nanoedge.requirements: memory_mb=-5: must be >= 0),
    C(label io.nanoedge.requirements differs between platforms) with each platform's value,
    C(label io.nanoedge.description: port must be {number: 1-65535, protocol: udp|tcp}) with the value,
    C(label io.nanoedge.requirements and label io.nanoedge.description disagree on the requirements), or
    C(manifest '1.0' not found) with the HTTP status. With O(on_error=fail) every such image is listed,
    separated by C(;).
  - >-
    A registry-wide failure starts with C(registry HOST, repository NAME:) and says what failed, for example
    C(GET manifest '1.0': 401 Unauthorized: the registry asks for Basic credentials and none were given),
    C(token service URL refused the credentials of user 'ci') or C(GET manifest '1.0' timed out after 10s).
seealso:
  - plugin: nanoedge.core.allocate
    plugin_type: filter
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.oci_registry
attributes:
  check_mode:
    support: full
    details:
      - A lookup only reads the registry; it runs the same in check mode.
  diff_mode:
    support: N/A
    details:
      - A lookup changes nothing.
  idempotent:
    support: full
    details:
      - Results are sorted by name, so unchanged images give equal results on every run.
"""

EXAMPLES = r"""
- name: Discover the nanoservices in the edge registry
  ansible.builtin.set_fact:
    services: "{{ lookup('nanoedge.core.service_profiles', registry='http://127.0.0.1:5000', repositories=['nanoedge/*']) }}"

- name: Read named repositories (no catalog needed), highest semantic version, with a cache
  ansible.builtin.set_fact:
    services: >-
      {{ lookup('nanoedge.core.service_profiles', 'nanoedge/spo2', 'nanoedge/hrv',
                registry='https://registry.clinic.example', tag_policy='semver',
                username=registry_user, password=registry_password,
                ca_path='/etc/nanoedge/registry-ca.pem',
                cache_path='/var/cache/nanoedge/service_profiles.json') }}

- name: Leave out images without a usable label, with a warning
  ansible.builtin.set_fact:
    services: "{{ lookup('nanoedge.core.service_profiles', registry='http://127.0.0.1:5000', on_error='warn') }}"

- name: The research prototype's way - JSON in the Docker Hub repository description
  ansible.builtin.set_fact:
    services: >-
      {{ lookup('nanoedge.core.service_profiles', registry='https://hub.docker.com', source='hub',
                repositories=['nanoedgelab/spo2', 'nanoedgelab/hrv']) }}

- name: Place the services
  ansible.builtin.set_fact:
    plan: "{{ services | nanoedge.core.allocate(groups['workers'] | map('extract', hostvars, 'nanoedge_profile')) }}"
"""

RETURN = r"""
_raw:
  description: One list of services, sorted by name.
  type: list
  elements: dict
  contains:
    name:
      description: Service name, from the label O(service_label) or the last component of the repository.
      type: str
      returned: always
      sample: spo2
    image:
      description: The image reference that was read, C(registry/repository:tag).
      type: str
      returned: always
      sample: 127.0.0.1:5000/nanoedge/spo2:1.0
    digest:
      description: Digest of the manifest (or index) the tag points to; deploy by it to get exactly what was read.
      type: str
      returned: always
      sample: sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b
    requires:
      description: The requirements, normalised; every key is present and C(0), C("") or C([]) means no requirement.
      type: dict
      returned: always
      sample: {"capabilities": ["pom"], "cpu": 1, "memory_mb": 64, "storage_mb": 20, "power": "", "network": "",
               "min_battery_percent": 0}
    platforms:
      description: The platforms the image runs on, C(os/architecture[/variant]), sorted.
      type: list
      elements: str
      returned: always
      sample: ["linux/arm/v7", "linux/arm64"]
    registry:
      description:
        - The registry the image was read from, as O(registry) names it (scheme, host and port); the role
          C(nanoedge.core.deploy) reads a bare-metal service's program from there. Empty with O(source=hub).
      type: str
      returned: always
      sample: http://127.0.0.1:5000
    description:
      description:
        - The service description, normalised (every key present), from the image label O(description_label), or
          for an image without it from its other labels and config. See C(nanoservices/README.md) for each key.
      type: dict
      returned: always
      sample: {"name": "spo2", "version": "1.0.0", "description": "SpO2 and pulse rate over CoAP",
               "requirements": {"capabilities": ["pom"], "cpu": 0.5, "memory_mb": 64, "storage_mb": 20, "power": "",
                                "network": "", "min_battery_percent": 0},
               "program": "spo2/spo2.py", "libraries": ["common/nanoedge_ns"],
               "python_requirements": ["aiocoap==0.4.17"], "port": {"number": 5701, "protocol": "udp"},
               "provides": {"path": "/spo2"}, "consumes": {},
               "io": [{"kind": "sensor", "host_path": "/dev/ttyUSB0", "container_path": "/dev/ttyUSB0",
                       "env": "NANOEDGE_POM_DEVICE", "mode": "ro"}], "environment": {}}
    critical:
      description: From the description, when it says so; the plan fails when a critical service has no node.
      type: bool
      returned: when the description has it
      sample: true
    replicas:
      description: From the description, when it says so; how many nodes the P(nanoedge.core.allocate#filter) filter places it on.
      type: int
      returned: when the description has it
      sample: 2
    priority:
      description: From the description, when it says so; used by the V(optimal) strategy of P(nanoedge.core.allocate#filter).
      type: float
      returned: when the description has it
      sample: 1
"""

import typing as t  # noqa: E402

from ansible.errors import AnsibleLookupError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402
from ansible.utils.display import Display  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402

from ansible_collections.nanoedge.core.plugins.plugin_utils._service_profiles import (  # noqa: E402
    DiscoveryError,
    DiscoveryOptions,
    discover,
)

display = Display()

PLUGIN = "nanoedge.core.service_profiles"


class LookupModule(LookupBase):

    def run(self, terms: t.List[t.Any], variables: t.Optional[t.Dict[str, t.Any]] = None,
            **kwargs: t.Any) -> t.List[t.Any]:
        self.set_options(var_options=variables, direct=kwargs)
        repositories = [str(term) for term in (terms or [])] + list(self.get_option("repositories") or [])
        options = DiscoveryOptions(
            registry=self.get_option("registry"),
            repositories=repositories,
            source=self.get_option("source"),
            requirements_label=self.get_option("requirements_label"),
            service_label=self.get_option("service_label") or "",
            description_label=self.get_option("description_label") or "",
            annotation=self.get_option("annotation"),
            tag_policy=self.get_option("tag_policy"),
            tag=self.get_option("tag"),
            include_prerelease=self.get_option("include_prerelease"),
            on_error=self.get_option("on_error"),
            username=self.get_option("username"),
            password=self.get_option("password"),
            validate_certs=self.get_option("validate_certs"),
            ca_path=self.get_option("ca_path"),
            timeout=self.get_option("timeout"),
            concurrency=self.get_option("concurrency"),
            catalog_page_size=self.get_option("catalog_page_size"),
            cache_path=self.get_option("cache_path"),
            hub_image_registry=self.get_option("hub_image_registry"),
        )
        try:
            result = discover(options, warn=lambda message: display.warning("%s: %s" % (PLUGIN, message)))
        except DiscoveryError as exc:
            raise AnsibleLookupError("%s: %s" % (PLUGIN, exc)) from exc
        # labels are written by whoever pushed the image: never let them be templated
        return [wrap_var(result.services)]
