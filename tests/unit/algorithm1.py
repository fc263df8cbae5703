# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A line-by-line transcription of the paper's Algorithm 1, the reference for ``first_fit``.

Deliberately naive (every service scans every node from the first) so that
it is obviously right; tests and the benchmark compare the fast
implementation with it. Two points differ from the paper (docs/contracts.md, "The allocation result and the plan file"):
a node keeps its own power source and networks (the paper's line 6 would overwrite them),
and requirements that are 0 or empty are not checked. ``min_battery_percent``
is the collection's one addition: on DC power the node needs that much charge.
"""

from __future__ import annotations

import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._requirements import normalize_requirements


def algorithm1(services: t.Sequence[t.Mapping[str, t.Any]], nodes: t.Sequence[t.Mapping[str, t.Any]],
               ) -> t.Tuple[t.Dict[str, str], t.Dict[str, t.Dict[str, t.Any]]]:
    """Return (placements, remaining) for services and node profiles given as lists."""
    P = [{"t": set(node["capabilities"]), "c": node["cpu"]["cores"], "m": node["memory_mb"]["available"],
          "b": node["power"]["source"], "battery": node["power"].get("battery_percent"),
          "n": set(node["network"]), "s": node["storage_mb"]["free"]} for node in nodes]
    I = len(P)  # noqa: E741 - the paper's name for the number of workers
    placements: t.Dict[str, str] = {}
    for service in services:                       # 1: FOR k = 1 to K
        Pk = normalize_requirements(service["requires"])
        i = 0                                      # 2: i = 1; Match = 0
        match = False
        while not match and i < I:                 # 3: WHILE Match = 0 and i < I + 1
            Pi = P[i]
            if (set(Pk["capabilities"]) <= Pi["t"]               # 4: t_k in t_i
                    and Pk["cpu"] <= Pi["c"]                     # c_k <= c_i
                    and Pk["memory_mb"] <= Pi["m"]               # m_k <= m_i
                    and (not Pk["power"] or Pk["power"] == Pi["b"])          # b_k = b_i
                    and (not Pk["min_battery_percent"] or Pi["b"] == "ac"
                         or (Pi["battery"] is not None and Pi["battery"] >= Pk["min_battery_percent"]))
                    and (not Pk["network"] or Pk["network"] in Pi["n"])      # n_k in n_i
                    and Pk["storage_mb"] <= Pi["s"]):            # s_k <= s_i
                match = True                       # 5: Match = 1; allocate S_k to W_i
                placements[service["name"]] = nodes[i]["node"]
                Pi["c"] -= Pk["cpu"]               # 6: P_i = t_i, c_i - c_k, m_i - m_k, b_i, n_i, s_i - s_k
                Pi["m"] -= Pk["memory_mb"]
                Pi["s"] -= Pk["storage_mb"]
            else:
                i += 1                             # 7: ELSE i = i + 1
    remaining = {nodes[i]["node"]: {"cpu": P[i]["c"], "memory_mb": P[i]["m"], "storage_mb": P[i]["s"]}
                 for i in range(I)}
    return placements, remaining
