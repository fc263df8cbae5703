#!/usr/bin/python
# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: resource_facts
short_description: Discover a node's resources as a nanoedge resource profile
version_added: 0.1.0
description:
  - Builds the node's resource profile (CPU cores and BogoMIPS, memory, storage, power source and battery, network
    types, attached sensors and actuators) and returns it as the fact C(nanoedge_profile).
  - This is step 1 of resource-aware nanoservice deployment. The profile has the shape the other parts of the
    collection expect (the CoAP profile registry, the inventory plugin and the allocation filter).
  - Everything is read directly from C(/proc) and C(/sys); no external command runs. A profile takes a few milliseconds
    to build and stays well under 2 kB.
  - Inside a container (cgroup v1 or v2) the CPU quota and the memory limit apply. C(cpu.cores) is the quota divided
    by the period, rounded down (at least 1, at most the online CPUs); C(memory_mb.total) is the smaller of
    C(MemTotal) and the memory limit.
  - Sensors and actuators are found through the HAT ID EEPROM (C(/proc/device-tree/hat/), or
    C(/sys/firmware/devicetree/base/hat/) where C(/proc/device-tree) is absent), USB devices, I2C devices and 1-Wire
    devices, and mapped to capabilities through a device catalog shipped with the collection and extended by
    O(device_catalog).
  - A source that is missing, unreadable or malformed is skipped and named in RV(ansible_facts.nanoedge_profile_warnings);
    the module does not fail because of it. Hardware that is simply absent (no battery, no HAT) is not a warning.
  - Requires only the Python standard library (Python 3.9 or newer) on the target.
author:
  - nanoedge.core contributors (!UNKNOWN)
extends_documentation_fragment:
  - nanoedge.core.attributes
  - nanoedge.core.attributes.facts
  - nanoedge.core.attributes.facts_module
options:
  node:
    description:
      - The node name recorded in the profile; the CoAP registry and the allocation key profiles by it.
      - Defaults to the inventory hostname (lower-cased), so the profile is keyed like the inventory.
      - Without an inventory hostname (the module run outside a play), the host's own name is used (the kernel host
        name under O(root), lower-cased).
      - Must match C([a-z0-9][a-z0-9._-]{0,62}).
    type: str
  root:
    description:
      - Folder under which every C(/proc) and C(/sys) path is read, for example a recorded tree of another machine.
    type: path
    default: /
  storage_path:
    description:
      - The file system whose size and free space are reported in C(storage_mb), for example where container images live.
      - Read under O(root).
    type: str
    default: /
  device_catalog:
    description:
      - Extra device catalog entries, added after the shipped catalog.
      - Each entry is a dictionary with C(capability), C(kind) (V(sensor) or V(actuator)), C(name) and exactly one
        match key, C(usb) (V(VVVV:PPPP) vendor and product id), C(hat) (the HAT EEPROM product string), C(i2c) (the
        kernel's I2C device name) or C(w1) (the 1-Wire family code, for example V(28)).
      - An entry with the same match and capability as a shipped one replaces it.
      - A malformed entry fails the module with a message naming the entry.
    type: list
    elements: dict
    default: []
  capabilities:
    description:
      - Capabilities declared for this node in addition to those found on its hardware.
      - Defaults to the inventory variable C(nanoedge_capabilities) of the host when that is set.
    type: list
    elements: str
  labels:
    description:
      - Free-form labels stored in the profile (string values; numbers and booleans are converted to strings).
    type: dict
    default: {}
notes:
  - The profile never reports more memory available than its total, and never more free storage than its total.
  - C(power.source) is V(ac) without a battery. With an AC, USB or mains supply exposed, its C(online) decides (V(ac)
    when one is online, else V(dc)). With only a battery exposed (most UPS HATs and fuel gauges), V(dc) exactly while
    the battery is C(Discharging), as C(Charging), C(Not charging) and C(Full) mean external power is there. A
    battery status C(Unknown) gives V(ac) with a warning.
  - C(network) lists the interfaces backed by hardware (with a C(device) in sysfs, as Ethernet ports, radios and
    modems have); bridges, veth pairs, tun/tap, WireGuard, dummy and Docker's interfaces are left out.
  - C(power.charging) is V(true) for battery status C(Charging), V(false) for C(Discharging), C(Not charging) and
    C(Full), and V(null) when unknown or without a battery.
  - Shipped catalog entries use identifiers that identify one kind of device. Generic USB-serial bridges (FTDI, CP210x,
    CH340) are not shipped, because many unrelated cables use them; declare such devices per node with
    O(device_catalog), as the examples do for the BerryMed BM1000B pulse oximeter.
"""

EXAMPLES = r"""
- name: Discover the node's resources (node = inventory hostname, plus the capabilities in nanoedge_capabilities)
  nanoedge.core.resource_facts:

- name: Add the pulse oximeter whose cable uses an FTDI bridge, and measure the Docker data folder
  nanoedge.core.resource_facts:
    node: "{{ inventory_hostname }}"
    storage_path: /var/lib/docker
    device_catalog:
      - capability: pom
        kind: sensor
        name: BerryMed BM1000B
        usb: "0403:6001"
    labels:
      site: ward-3

- name: Show what was found
  ansible.builtin.debug:
    msg: >-
      {{ nanoedge_profile.node }} has {{ nanoedge_profile.cpu.cores }} cores,
      {{ nanoedge_profile.memory_mb.available }} MiB free memory and capabilities
      {{ nanoedge_profile.capabilities | join(', ') }}

- name: Build the profile of a recorded machine instead of this one
  nanoedge.core.resource_facts:
    node: recorded-pi
    root: /srv/recordings/pi3b
"""

RETURN = r"""
ansible_facts:
  description: Facts set on the host.
  returned: always
  type: dict
  contains:
    nanoedge_profile:
      description:
        - The node's resource profile.
        - Memory and storage are whole MiB, rounded down.
      returned: always
      type: dict
      contains:
        schema:
          description: Version of the profile format.
          returned: always
          type: int
          sample: 1
        node:
          description: The node name, see O(node).
          returned: always
          type: str
          sample: w4
        collected_at:
          description: When the profile was built, UTC, ISO 8601.
          returned: always
          type: str
          sample: "2026-11-26T02:30:00Z"
        arch:
          description:
            - The OCI platform images for this node must be built for (V(arm/v6), V(arm/v7), V(arm64), V(amd64)),
              the userland's, from the ELF header of the running Python or of C(/bin/sh).
            - A 32-bit Raspberry Pi OS on a 64-bit kernel is V(arm/v7), whatever the kernel says.
          returned: always
          type: str
          sample: arm/v7
        machine:
          description: The kernel's machine, as C(uname -m) prints it.
          returned: always
          type: str
          sample: aarch64
        model:
          description: The board model from the device tree, else the CPU model from C(/proc/cpuinfo).
          returned: always
          type: str
          sample: Raspberry Pi 3 Model B Plus Rev 1.3
        cpu:
          description:
            - C(cores) counts online CPUs, capped by a cgroup CPU quota.
            - C(bogomips) is the per-core figure (the mean when cores differ), V(null) when unknown.
            - C(load1) is the one-minute load average, V(null) when unknown.
          returned: always
          type: dict
          sample: {"cores": 4, "bogomips": 89.6, "load1": 0.31}
        memory_mb:
          description: Total and available memory in MiB, capped by a cgroup memory limit.
          returned: always
          type: dict
          sample: {"total": 926, "available": 640}
        storage_mb:
          description: Size and free space of O(storage_path) in MiB (free space for unprivileged users).
          returned: always
          type: dict
          sample: {"total": 29820, "free": 21033}
        power:
          description: Power source (V(ac) or V(dc)) and battery percent, health and charging state.
          returned: always
          type: dict
          sample: {"source": "dc", "battery_percent": 76, "battery_health": 0.91, "charging": false}
        network:
          description: Sorted network types the node has (V(bluetooth), V(cellular), V(ethernet), V(wifi)).
          returned: always
          type: list
          elements: str
          sample: ["bluetooth", "ethernet", "wifi"]
        capabilities:
          description: Sorted capabilities, found on the hardware and declared with O(capabilities).
          returned: always
          type: list
          elements: str
          sample: ["bot", "pom"]
        devices:
          description:
            - The sensors and actuators found, with their bus, id and, where the bus gives them, serial and path.
            - The id is C(VVVV:PPPP) for USB, the product string for a HAT, the device name for I2C and the
              slave name for 1-Wire.
          returned: always
          type: list
          elements: dict
          sample:
            - {"capability": "bot", "kind": "sensor", "name": "Maxim DS18B20 temperature probe", "bus": "w1",
               "id": "28-0316a2795cff", "serial": "0316a2795cff"}
        labels:
          description: The labels from O(labels).
          returned: always
          type: dict
          sample: {"site": "ward-3"}
    nanoedge_profile_warnings:
      description: One message for each source that was missing, unreadable or malformed and therefore skipped.
      returned: always
      type: list
      elements: str
      sample: ["/proc/loadavg: missing"]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.nanoedge.core.plugins.module_utils._device_catalog import CatalogError, build_catalog  # noqa: E402
from ansible_collections.nanoedge.core.plugins.module_utils._discovery import DiscoveryError, discover  # noqa: E402
from ansible_collections.nanoedge.core.plugins.module_utils._profile import ProfileError, validate_profile  # noqa: E402

PREFIX = "nanoedge.core.resource_facts: "


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            node=dict(type="str"),
            root=dict(type="path", default="/"),
            storage_path=dict(type="str", default="/"),
            device_catalog=dict(type="list", elements="dict", default=[]),
            capabilities=dict(type="list", elements="str"),
            labels=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        catalog = build_catalog(params["device_catalog"])
        profile, warnings = discover(
            catalog=catalog,
            root=params["root"],
            storage_path=params["storage_path"],
            node=params["node"],
            capabilities=params["capabilities"] or [],
            labels=params["labels"],
        )
        validate_profile(profile)
    except (CatalogError, DiscoveryError) as exc:
        module.fail_json(msg=PREFIX + str(exc))
    except ProfileError as exc:
        module.fail_json(msg=PREFIX + "built an invalid profile: %s" % exc)
    module.exit_json(changed=False, ansible_facts={"nanoedge_profile": profile, "nanoedge_profile_warnings": warnings})


if __name__ == "__main__":
    main()
