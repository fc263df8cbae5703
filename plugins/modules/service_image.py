#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: service_image
short_description: Build a nanoservice's image from its service.json and push it to an OCI registry
version_added: 0.1.0
description:
  - Reads a service description (C(service.json), see "Service description" in C(docs/contracts.md)), checks it with
    the collection's schema and builds the image C(<registry>/<namespace>/<name>:<version>) from the collection's
    C(nanoservices/Dockerfile), also tagged C(latest), then pushes both.
  - The image carries the labels the rest of the collection reads, C(io.nanoedge.service), C(io.nanoedge.requirements)
    (the requirements as written) and C(io.nanoedge.description) (the whole description, normalised), the OCI labels
    C(org.opencontainers.image.title), C(description), C(version) and C(licenses), and C(io.nanoedge.build.inputs), a
    digest of everything the image is built from.
  - The program and the libraries are relative to O(source). The service's folder C(<source>/<name>/) holds
    C(service.json) and the program (C(program) must be C(<name>/...)); a library C(common/<folder>) comes from
    C(<source>/common/<folder>) or, when O(source) has none, from the collection's C(nanoservices/common/) (the
    library C(nanoedge_ns)). aiocoap is unpacked from its wheel into the image, which needs no pip.
  - Nothing is built or pushed when the registry's image of the version carries the same C(io.nanoedge.build.inputs)
    and C(latest) is that image. When only the local image carries it, it is pushed without a rebuild.
  - Runs on the controller (C(connection=local), for example in a play on C(localhost)); the Docker work is done by
    M(community.docker.docker_host_info), M(community.docker.docker_image_info), M(community.docker.docker_image),
    M(community.docker.docker_image_tag) and M(community.docker.docker_image_push), which need the Python library
    C(requests) on the controller's interpreter.
  - "Platforms: the engine builds for its own platform only (C(linux/amd64) on an x86-64 machine). Building for others
    needs docker buildx with QEMU emulation, which this module does not use; any other platform is refused with a
    message."
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.attributes.action
attributes:
  action:
    support: full
    details:
      - The action plugin checks the description, assembles the build context and compares with the registry on the
        controller.
  check_mode:
    support: full
    details:
      - Says whether the image would be built and pushed; builds, tags and pushes nothing.
  diff_mode:
    support: full
    details:
      - Shows the nanoedge labels of the registry's image (or, without O(push), of the local one) and those the new
        image carries.
  idempotent:
    support: full
options:
  description:
    description:
      - Path of the service's C(service.json), in the service's folder C(<source>/<name>/).
      - A relative path is relative to the playbook's folder, like O(source).
    type: path
    required: true
  source:
    description:
      - The folder the description's C(program) and C(libraries) are relative to.
      - Default, the folder above the service's folder.
    type: path
  registry:
    description:
      - The registry, as image references spell it (C(host[:port])).
    type: str
    default: 127.0.0.1:5000
  registry_url:
    description:
      - Where the registry answers, to compare with what it holds.
      - Default, C(http://<registry>) for a loopback address (Docker's insecure registries) and C(https://<registry>)
        otherwise.
    type: str
  namespace:
    description:
      - The repository is C(<namespace>/<name>); an empty namespace makes it C(<name>).
    type: str
    default: nanoedge
  base_image:
    description:
      - The image the Dockerfile starts from (it needs C(python3)); it must be in the local Docker engine.
    type: str
    default: nanoedge/base:bookworm
  platforms:
    description:
      - The platforms to build for (V(linux/amd64), V(amd64), V(linux/arm/v7)).
      - Empty, the builder's own. Any other than the builder's own fails the task.
    type: list
    elements: str
    default: []
  push:
    description:
      - Push the image and C(latest). With V(false), build and tag only, and compare with the local image.
    type: bool
    default: true
  wheel_dir:
    description:
      - Where aiocoap's wheel is kept; pip downloads it there the first time.
    type: path
    default: ~/.cache/nanoedge/wheels
notes:
  - The collection's C(tools/nanoservices.py) builds the example nanoservices with the same code.
"""

EXAMPLES = r"""
- name: Build and push the resp nanoservice (my-service/resp/service.json)
  nanoedge.core.service_image:
    description: my-service/resp/service.json

- name: Build only, into another namespace
  nanoedge.core.service_image:
    description: "{{ playbook_dir }}/resp/service.json"
    namespace: clinic
    push: false
"""

RETURN = r"""
name:
  description: The service's name.
  returned: success
  type: str
  sample: resp
image:
  description: The image reference, tagged with the version.
  returned: success
  type: str
  sample: 127.0.0.1:5000/nanoedge/resp:1.0.0
latest:
  description: The same image, tagged C(latest).
  returned: success
  type: str
  sample: 127.0.0.1:5000/nanoedge/resp:latest
digest:
  description: The manifest digest of RV(image) in the registry (null without O(push) or before the first push).
  returned: success
  type: str
  sample: sha256:3d1f0f9c0c4d1e7b8a6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09
platform:
  description: The platform the image is built for.
  returned: success
  type: str
  sample: linux/amd64
built:
  description: Whether the image was built (would be, in check mode).
  returned: success
  type: bool
  sample: true
pushed:
  description: Whether the image and C(latest) were pushed (would be, in check mode).
  returned: success
  type: bool
  sample: true
action:
  description: What was done, V(built and pushed), V(built), V(pushed), V(tagged) or V(unchanged).
  returned: success
  type: str
  sample: built and pushed
inputs:
  description: The digest of everything the image is built from, its label C(io.nanoedge.build.inputs).
  returned: success
  type: str
  sample: 5c0e2bd41f6a8e37
labels:
  description: The image's nanoedge labels.
  returned: success
  type: dict
  sample:
    io.nanoedge.service: resp
    io.nanoedge.requirements: '{"cpu": 0.25, "memory_mb": 32}'
    io.nanoedge.description: '{"consumes":{},"description":"...","name":"resp"}'
    io.nanoedge.build.inputs: 5c0e2bd41f6a8e37
"""
