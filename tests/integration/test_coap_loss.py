# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reporting over a lossy link: the registry and 100 reporting nodes sit in two
network namespaces joined by a veth pair, and each side's input hook drops 30 %
of UDP datagrams (nftables ``numgen random``; this kernel has no netem). CoAP's
own retransmission loses a few reports at that rate; the client's
application-level retries with backoff must get all 100 stored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import typing as t
import uuid

import pytest

from _registry_server import BASE_PROFILE, RegistryServer, server_environment

REPORTS = 100
LOSS_PERCENT = 30
NFT_TABLE = "nanoedge_loss"
# At 30 % loss each way an attempt (5 s, so one CoAP retransmission) fails
# about 45 % of the time; 16 attempts leave a report unstored in roughly one
# run out of several thousand, and a typical run takes under a minute.
REPORTER = r"""
import asyncio, json, sys
from ansible_collections.nanoedge.core.plugins.module_utils import _coap

PROFILE = json.loads(sys.argv[2])
SETTINGS = _coap.ReportSettings(lifetime=600, timeout=5, retries=15, backoff=0.5, backoff_max=4)

async def main():
    async def one(i):
        profile = dict(PROFILE, node="lossy-%03d" % i)
        (outcome,) = await _coap.report(profile, [sys.argv[1]], SETTINGS)
        return outcome
    outcomes = await asyncio.gather(*(one(i) for i in range(int(sys.argv[3]))))
    print(json.dumps({"stored": sum(o.stored for o in outcomes),
                      "attempts": [o.attempts for o in outcomes],
                      "errors": [o.error for o in outcomes if o.error]}))

asyncio.run(main())
"""


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr))
    return proc


def _unavailable() -> t.Optional[str]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return "%s is not installed (Debian: %s)" % (tool, "iproute2" if tool == "ip" else "nftables")
    probe = "nelprobe%s" % uuid.uuid4().hex[:6]
    try:
        made = _run("ip", "netns", "add", probe, check=False)
        if made.returncode != 0:
            return "cannot create a network namespace: %s" % made.stderr.strip()
        nft = _run("ip", "netns", "exec", probe, "nft", "add", "table", "inet", NFT_TABLE, check=False)
        if nft.returncode != 0:
            return "nftables does not work in a network namespace: %s" % nft.stderr.strip()
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


class LossyLink:
    """Two namespaces, a veth pair between them, loss on both input hooks."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.server_ns, self.client_ns = "nel-s-%s" % tag, "nel-c-%s" % tag
        self.veth = ("nels%s" % tag, "nelc%s" % tag)
        self.server_ip, self.client_ip = "10.231.%d.1" % (int(tag[:2], 16) % 250), "10.231.%d.2" % (int(tag[:2], 16) % 250)

    def __enter__(self) -> "LossyLink":
        try:
            for ns in (self.server_ns, self.client_ns):
                _run("ip", "netns", "add", ns)
            _run("ip", "link", "add", self.veth[0], "type", "veth", "peer", "name", self.veth[1])
            for ns, dev, ip in ((self.server_ns, self.veth[0], self.server_ip),
                                (self.client_ns, self.veth[1], self.client_ip)):
                _run("ip", "link", "set", dev, "netns", ns)
                _run("ip", "-n", ns, "addr", "add", ip + "/24", "dev", dev)
                _run("ip", "-n", ns, "link", "set", dev, "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def add_loss(self, percent: int) -> None:
        ruleset = ("table inet %s {\n chain input {\n  type filter hook input priority 0; policy accept;\n"
                   "  meta l4proto udp numgen random mod 100 < %d counter drop\n }\n}\n" % (NFT_TABLE, percent))
        for ns in (self.server_ns, self.client_ns):
            proc = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=ruleset, text=True,
                                  capture_output=True, timeout=30, check=False)
            assert proc.returncode == 0, proc.stderr

    def dropped(self) -> t.Dict[str, int]:
        counts = {}
        for ns in (self.server_ns, self.client_ns):
            listing = json.loads(_run("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", NFT_TABLE).stdout)
            counts[ns] = sum(expr["counter"]["packets"] for item in listing["nftables"] if "rule" in item
                             for expr in item["rule"]["expr"] if "counter" in expr)
        return counts

    def remove_loss(self) -> None:
        for ns in (self.server_ns, self.client_ns):
            _run("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", NFT_TABLE, check=False)

    def __exit__(self, *exc_info: t.Any) -> None:
        for ns in (self.server_ns, self.client_ns):
            _run("ip", "netns", "del", ns, check=False)  # takes the veth pair and the rules with it


def test_hundred_reports_over_30_percent_loss(tmp_path):
    reason = _unavailable()
    if reason:
        pytest.skip("loss emulation unavailable: %s" % reason)

    with LossyLink() as link:
        server = RegistryServer(tmp_path / "registry.sqlite", bind=link.server_ip,
                                prefix=["ip", "netns", "exec", link.server_ns])
        server.start()
        try:
            link.add_loss(LOSS_PERCENT)
            proc = subprocess.run(
                ["ip", "netns", "exec", link.client_ns, sys.executable, "-c", REPORTER, server.url,
                 json.dumps(BASE_PROFILE), str(REPORTS)],
                capture_output=True, text=True, timeout=240, check=False, env=server_environment())
            assert proc.returncode == 0, proc.stderr
            summary = json.loads(proc.stdout)
            dropped = link.dropped()
            link.remove_loss()

            verify = subprocess.run(
                ["ip", "netns", "exec", link.client_ns, sys.executable, "-c",
                 "import json, sys;"
                 "from ansible_collections.nanoedge.core.plugins.module_utils import _coap;"
                 "print(json.dumps(sorted(_coap.run_fetch_profiles(sys.argv[1]))))", server.url],
                capture_output=True, text=True, timeout=60, check=False, env=server_environment())
            assert verify.returncode == 0, verify.stderr
        finally:
            server.stop()

    retried = sum(1 for attempts in summary["attempts"] if attempts > 1)
    histogram = {n: summary["attempts"].count(n) for n in sorted(set(summary["attempts"]))}
    print("%d of %d stored; %d needed retries (reports by attempts: %s); datagrams dropped: %s" % (
        summary["stored"], REPORTS, retried, histogram, dropped))
    # the loss really happened, on both sides, and some reports needed retries
    assert all(count > 0 for count in dropped.values()), dropped
    assert max(summary["attempts"]) > 1, summary
    assert summary["errors"] == [] and summary["stored"] == REPORTS, summary
    assert json.loads(verify.stdout) == ["lossy-%03d" % i for i in range(REPORTS)]
