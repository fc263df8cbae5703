# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Command-line scaffolding every nanoservice shares: the CoAP endpoint
options (also read from the environment, which is how a container or a
systemd unit configures them) and the asyncio entry point, which also keeps
a producer registered at the node's service directory while it serves
(``nanoedge_ns.directory``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
import typing as t

from nanoedge_ns import coapio, directory


def env(name: str, default: str) -> str:
    return os.environ.get("NANOEDGE_" + name.upper(), default)


def parser(name: str, doc: t.Optional[str], port: int) -> argparse.ArgumentParser:
    """Options every nanoservice has; ``port`` is the service's own default
    port, distinct per service so several can share one node. The help text
    is the first paragraph of the program's docstring."""
    description = " ".join((doc or name).strip().split("\n\n", 1)[0].split())
    result = argparse.ArgumentParser(prog=name, description=description)
    result.set_defaults(service_name=name)
    result.add_argument("--bind", default=env("bind", ""),
                        help="address of the CoAP server (env NANOEDGE_BIND, default: all)")
    result.add_argument("--port", type=int, default=int(env("port", str(port))),
                        help="CoAP port (env NANOEDGE_PORT, default %d)" % port)
    result.add_argument("--verbose", action="store_true")
    durable = result.add_argument_group("numbered readings and their history (nanoedge_ns.readings, .follower)")
    durable.add_argument("--state-dir", default=env("state_dir", ""),
                         help="folder of the durable state: the history of a producer, the position of a consumer "
                              "(env NANOEDGE_STATE_DIR, default /var/lib/nanoedge/%s)" % name)
    durable.add_argument("--instance", default=env("instance", "main"),
                         help="names this source in its readings: <service>/<instance> "
                              "(env NANOEDGE_INSTANCE, default main)")
    durable.add_argument("--history-count", type=int, default=int(env("history_count", "20000")),
                         help="readings kept at most (env NANOEDGE_HISTORY_COUNT, default 20000)")
    durable.add_argument("--history-bytes", type=int, default=int(env("history_bytes", str(4 << 20))),
                         help="bytes of history kept at most (env NANOEDGE_HISTORY_BYTES, default 4 MiB)")
    durable.add_argument("--history-fsync", type=_flag, default=_flag(env("history_fsync", "1")),
                         help="1: each reading is on stable storage before it is served; 0: only in the kernel's "
                              "cache, lost by a power cut (env NANOEDGE_HISTORY_FSYNC, default 1)")
    return result


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError("expected 1 or 0, got %r" % value)


def now() -> float:
    return time.time()


def iso(timestamp: t.Optional[float]) -> t.Optional[str]:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _interrupt(signum: int, frame: t.Any) -> None:
    raise KeyboardInterrupt


async def registered(main: t.Callable[[argparse.Namespace], t.Awaitable[None]], args: argparse.Namespace) -> None:
    """``main(args)``, with the service registered at the node's directory from when it serves until it stops
    (when the deployment gave it a directory and its own URI)."""
    client = coapio.Client(timeout=2.0)
    registrar = directory.registrar_for(client, getattr(args, "service_name", "") or "", args.instance)
    task: t.Optional[asyncio.Future] = None

    def serving() -> None:
        nonlocal task
        if registrar is not None and task is None:
            task = asyncio.ensure_future(registrar.run())

    coapio.on_serving.append(serving)
    try:
        await main(args)
    finally:
        coapio.on_serving.remove(serving)
        if task is not None:
            task.cancel()
            await registrar.close()  # type: ignore[union-attr]
        await client.close()


def run(main: t.Callable[[argparse.Namespace], t.Awaitable[None]], args: argparse.Namespace) -> int:
    coapio.setup_logging(args.verbose)
    # As PID 1 of its container the program has no default action for SIGTERM: without a handler,
    # every stop (a service moving away) would wait for Docker's timeout and a SIGKILL.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        asyncio.run(registered(main, args))
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("stopped")
    return 0
