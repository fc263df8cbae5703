# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The label keys nanoedge reads and writes (docs/contracts.md, "Labels"): the one place they are spelled.

Image labels tell the service profiles lookup what a service needs;
container and Swarm service labels let ``running_facts`` and the Swarm
backend find what nanoedge started; Swarm node labels publish a node's
placement facets. Standard library only, Python >= 3.9: modules import it.
"""

from __future__ import annotations

# Images, containers and Swarm services.
PREFIX = "io.nanoedge."
SERVICE_LABEL = PREFIX + "service"
REQUIREMENTS_LABEL = PREFIX + "requirements"
# The whole service description (plugin_utils/_service_description.py), as JSON, on images.
DESCRIPTION_LABEL = PREFIX + "description"
DIGEST_LABEL = PREFIX + "digest"
NODE_LABEL = PREFIX + "node"
IMAGE_LABEL = PREFIX + "image"
URI_LABEL = PREFIX + "uri"
# Swarm keeps a network as its own ID (its "host" network's ID is not the node's), so a
# service's network by name cannot be compared with what Swarm reports; this label can.
NETWORK_LABEL = PREFIX + "network"
# On a Swarm service: a digest of everything its specification says (the network by name included): a
# service whose label differs will be updated, and an update must name the network again, since
# Swarm drops a network an update leaves out (a service moved to another node lost "host").
# On a container: sha256:<hex> of what it was created from (_deploy_layout.spec_digest), so a node tells
# in O(1) whether its container is the one a description asks for.
SPEC_LABEL = PREFIX + "spec"
# Images: a digest of everything an image is built from (tools/nanoservices.py, nanoedge.core.service_image);
# an image whose digest equals the one a build would give needs no rebuild and no push.
BUILD_INPUTS_LABEL = PREFIX + "build.inputs"

# Swarm nodes: the node's name (services are pinned to it) and its placement facets.
SWARM_NODE_PREFIX = "nanoedge."
SWARM_NODE_LABEL = SWARM_NODE_PREFIX + "node"
SWARM_CAPABILITY_PREFIX = SWARM_NODE_PREFIX + "cap."
SWARM_POWER_LABEL = SWARM_NODE_PREFIX + "power"
SWARM_NETWORK_PREFIX = SWARM_NODE_PREFIX + "net."
SWARM_ARCH_LABEL = SWARM_NODE_PREFIX + "arch"
