# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon: watch, elect and reconcile."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import shlex
import signal
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.config import ConfigError
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.election import Peer
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import (
    Fingerprint, describe_diff, diff_fingerprints, fingerprint_digest, fingerprint_of, valid_fingerprint_entry,
)
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.plan import move_line, plan_outcome, read_plan
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.runner import (
    FileLock, RunResult, prune_run_logs, tail, terminate,
)
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import now_iso, write_json_atomically
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.watch import CF_JSON, aiocoap, describe_error

LOG = logging.getLogger("nanoedge.reconcile")

EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3


class Reconciler:
    def __init__(self, config: t.Dict[str, t.Any]) -> None:
        self.config = config
        self.stopping = asyncio.Event()
        self.wakeup = asyncio.Event()
        index = config["self"]
        self.manager = config["managers"][index] if index is not None else config["registry"]
        self.peers = [Peer(uri) for uri in config["managers"][:index]] if index else []
        self.role = "active" if not self.peers else "passive"
        self.role_since = now_iso()
        self.activated_at = self.started_at = time.monotonic()
        self.force_reason = "started as the active manager" if self.role == "active" else None  # type: t.Optional[str]
        self.context = None  # type: t.Any
        self.secctx = None  # type: t.Any
        # the live profiles as last read
        self.fingerprint = None  # type: t.Optional[Fingerprint]
        self.last_change = 0.0
        self.registry_error = None  # type: t.Optional[str]
        self.registry_down_since = 0.0
        self._reported_problems = set()  # type: t.Set[str]
        # what the last successful run acted on
        self.applied = None  # type: t.Optional[Fingerprint]
        self.last_run = None  # type: t.Optional[t.Dict[str, t.Any]]
        self.failures = 0
        self.next_retry = 0.0
        self.skipped_for = None  # type: t.Optional[str]
        self.running = False
        self.state_path = os.path.join(config["state_dir"], "state.json")
        self.decisions_path = os.path.join(config["state_dir"], "decisions.jsonl")

    # -- files -----------------------------------------------------------------------

    def prepare_dirs(self) -> None:
        for directory in (self.config["state_dir"], self.config["log_dir"],
                          os.path.dirname(self.config["lock_file"])):
            os.makedirs(directory, exist_ok=True)

    def load_state(self) -> None:
        """Carry over what the last successful run acted on, so the first reasons are accurate."""
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                state = json.load(handle)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            LOG.warning("ignoring unreadable %s: %s", self.state_path, exc)
            return
        applied = state.get("applied") if isinstance(state, dict) else None
        if isinstance(applied, dict) and all(valid_fingerprint_entry(v) for v in applied.values()):
            self.applied = applied
        if isinstance(state, dict) and isinstance(state.get("last_run"), dict):
            self.last_run = state["last_run"]

    def active_peer(self) -> str:
        """The manager acting now as this one sees it: itself, or the first earlier manager that answers."""
        if self.role == "active":
            return self.manager
        for peer in self.peers:
            if peer.up:
                return peer.uri
        return self.manager

    def write_state(self) -> None:
        state = {
            "role": self.role,
            "since": self.role_since,
            "manager": self.manager,
            "managers": self.config["managers"],
            "active_peer": self.active_peer(),
            "peers": {peer.uri: "up" if peer.up else "down" for peer in self.peers},
            "pid": os.getpid(),
            "updated": now_iso(),
            "registry": {"uri": self.config["registry"], "reachable": self.registry_error is None
                         and self.fingerprint is not None, "error": self.registry_error},
            "fingerprint": fingerprint_digest(self.fingerprint),
            "fingerprint_nodes": sorted(self.fingerprint) if self.fingerprint is not None else [],
            "applied": self.applied,
            "applied_fingerprint": fingerprint_digest(self.applied),
            "last_run": self.last_run,
            "failures": self.failures,
            "running": self.running,
        }
        try:
            write_json_atomically(self.state_path, state)
        except OSError as exc:
            LOG.error("error: cannot write %s: %s", self.state_path, exc)

    def decide(self, event: str, line: t.Optional[str], **fields: t.Any) -> None:
        """One decision: a line in the journal and a JSON line in decisions.jsonl."""
        if line:
            LOG.info("%s", line)
        record = {"time": now_iso(), "event": event, "manager": self.manager, "role": self.role}
        record.update(fields)
        try:
            with open(self.decisions_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as exc:
            LOG.error("error: cannot append to %s: %s", self.decisions_path, exc)

    # -- CoAP ------------------------------------------------------------------------

    async def open_context(self) -> None:
        self.context = await aiocoap.Context.create_client_context()
        if self.config["oscore_context"]:
            from aiocoap import oscore

            try:
                self.secctx = oscore.FilesystemSecurityContext(self.config["oscore_context"])
            except Exception as exc:  # aiocoap raises LoadError, filelock's Timeout, OSError...
                raise ConfigError("oscore_context %s: %s" % (self.config["oscore_context"],
                                                             str(exc) or type(exc).__name__)) from None
            # Managers read the registry as themselves; peers are only probed
            # on /.well-known/core, which needs no identity.
            self.context.client_credentials[self.config["registry"] + "/*"] = self.secctx

    async def close_context(self) -> None:
        if self.context is not None:
            await self.context.shutdown()
        release = getattr(self.secctx, "_destroy", None)
        if release is not None:
            release()

    def _profiles_request(self, observe: bool) -> t.Any:
        message = aiocoap.Message(code=aiocoap.GET, uri=self.config["registry"] + "/profiles")
        message.opt.accept = CF_JSON
        if observe:
            message.opt.observe = 0
        return self.context.request(message)

    def registry_failed(self, error: str) -> None:
        if self.registry_error is None:
            self.registry_down_since = time.monotonic()
            LOG.warning("registry %s: cannot read /profiles: %s; retrying until it answers",
                        self.config["registry"], error)
            self.registry_error = error
            self.write_state()
        else:
            self.registry_error = error

    def registry_answered(self) -> None:
        if self.registry_error is not None:
            LOG.info("registry %s answers again after %.1f s", self.config["registry"],
                     time.monotonic() - self.registry_down_since)
            self.registry_error = None

    def take_payload(self, response: t.Any) -> None:
        """A ``/profiles`` answer or notification; malformed ones are logged and ignored."""
        if not response.code.is_successful():
            self.payload_problem("answered %s %s: %s" % (response.code.dotted, response.code.name_printable,
                                                         bytes(response.payload[:200]).decode("utf-8", "replace")))
            return
        try:
            fingerprint, problems = fingerprint_of(json.loads(bytes(response.payload).decode("utf-8")))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            self.payload_problem("malformed /profiles answer ignored: %s" % exc)
            return
        for problem in problems:
            self.payload_problem("skipping a malformed profile: %s" % problem)
        if not problems:
            self._reported_problems.clear()
        self.registry_answered()
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.last_change = time.monotonic()
            self.write_state()
            self.wakeup.set()

    def payload_problem(self, text: str) -> None:
        # A registry that keeps serving the same bad answer must not flood the
        # journal: each problem once, until a clean answer ends the streak.
        if text not in self._reported_problems:
            LOG.warning("registry %s: %s", self.config["registry"], text)
            self._reported_problems.add(text)

    async def watch(self) -> None:
        """Observe ``/profiles``; re-register every interval (the polling
        fallback: it also heals an observation lost in a registry restart)."""
        retry = 0.5
        while not self.stopping.is_set():
            if await self._observe_once():
                retry = 0.5
                await self._sleep(min(0.5, self.config["interval"]))
            else:
                await self._sleep(retry)
                retry = min(retry * 2, self.config["interval"])

    async def _observe_once(self) -> bool:
        request = self._profiles_request(observe=True)
        observation = request.observation
        try:
            first = await asyncio.wait_for(request.response, self.config["request_timeout"])
        except asyncio.TimeoutError:
            self._cancel(observation)
            self.registry_failed("no answer within %g s" % self.config["request_timeout"])
            return False
        except (aiocoap.error.Error, OSError) as exc:
            self._cancel(observation)
            self.registry_failed(describe_error(exc))
            return False
        if not first.code.is_successful():
            self._cancel(observation)
            self.registry_failed("answered %s %s: %s" % (first.code.dotted, first.code.name_printable,
                                                         bytes(first.payload[:200]).decode("utf-8", "replace")))
            return False
        self.take_payload(first)
        if observation is None or first.opt.observe is None:
            # Not observable (or no longer): polling every interval is all there is.
            self._cancel(observation)
            await self._sleep(self.config["interval"])
            return True
        notifications = asyncio.Queue()  # type: asyncio.Queue

        # Callbacks rather than ``async for``: aiocoap's iterator re-raises the error that ended an
        # observation (a block-wise /profiles ends with ResourceChanged on every change) from its
        # finaliser, which would print a traceback to the journal each time.
        observation.register_callback(lambda notification: notifications.put_nowait(("notification", notification)))
        # whatever ends it, the answer is to observe again
        observation.register_errback(lambda exc: notifications.put_nowait(("end", describe_error(exc))))
        deadline = time.monotonic() + self.config["interval"]
        try:
            while not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                try:
                    kind, item = await asyncio.wait_for(self._next_or_stop(notifications), remaining)
                except asyncio.TimeoutError:
                    return True
                if kind == "stop":
                    return True
                if kind == "end":
                    LOG.debug("observation of %s/profiles ended (%s); observing again",
                              self.config["registry"], item)
                    return True
                self.take_payload(item)
            return True
        finally:
            self._cancel(observation)

    async def _next_or_stop(self, queue: asyncio.Queue) -> t.Tuple[str, t.Any]:
        getter = asyncio.ensure_future(queue.get())
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return ("stop", None)

    @staticmethod
    def _cancel(observation: t.Any) -> None:
        if observation is not None and not observation.cancelled:
            observation.cancel()

    async def fetch_once(self) -> bool:
        """One plain ``GET /profiles`` (for --once)."""
        request = self._profiles_request(observe=False)
        try:
            response = await asyncio.wait_for(request.response, self.config["request_timeout"])
        except asyncio.TimeoutError:
            self.registry_failed("no answer within %g s" % self.config["request_timeout"])
            return False
        except (aiocoap.error.Error, OSError) as exc:
            self.registry_failed(describe_error(exc))
            return False
        if not response.code.is_successful():
            self.registry_failed("answered %s %s: %s" % (response.code.dotted, response.code.name_printable,
                                                         bytes(response.payload[:200]).decode("utf-8", "replace")))
            return False
        self.take_payload(response)
        return self.fingerprint is not None

    # -- election ---------------------------------------------------------------------

    async def probe(self, peer: Peer) -> bool:
        """Whether the peer's registry answered ``GET /.well-known/core`` within probe_timeout."""
        message = aiocoap.Message(code=aiocoap.GET, uri=peer.uri + "/.well-known/core")
        try:
            # Any answer, even an error code, shows the peer's registry is alive.
            await asyncio.wait_for(self.context.request(message).response, self.config["probe_timeout"])
        except asyncio.TimeoutError:
            peer.last_error = "no answer within %g s" % self.config["probe_timeout"]
            return False
        except (aiocoap.error.Error, OSError) as exc:
            peer.last_error = describe_error(exc)
            return False
        return True

    def record_probe(self, peer: Peer, answered: bool) -> None:
        """Down after probe_failures failures in a row, up again after one answer."""
        if answered:
            peer.failures = 0
            if not peer.up:
                peer.up = True
                LOG.info("manager %s answers again", peer.uri)
        else:
            peer.failures += 1
            if peer.up and peer.failures >= self.config["probe_failures"]:
                peer.up = False
                LOG.info("manager %s stopped answering (%d probes failed, last: %s)",
                         peer.uri, peer.failures, peer.last_error)

    async def probe_round(self) -> None:
        results = await asyncio.gather(*(self.probe(peer) for peer in self.peers))
        for peer, answered in zip(self.peers, results):
            self.record_probe(peer, answered)
        self.update_role()

    def update_role(self) -> None:
        """Active exactly when every earlier manager is down; a change is a logged decision."""
        up = [peer for peer in self.peers if peer.up]
        role = "passive" if up else "active"
        if role == self.role:
            return
        previous, self.role = self.role, role
        self.role_since = now_iso()
        if role == "active":
            self.activated_at = time.monotonic()
            down = ", ".join(peer.uri for peer in self.peers)
            reason = "became active: %s stopped answering" % down
            self.force_reason = reason
            line = "%s; this manager %s is now ACTIVE" % (reason, self.manager)
        else:
            reason = "manager %s answers again" % up[0].uri
            self.force_reason = None
            self.skipped_for = None
            line = "%s; this manager %s goes PASSIVE" % (reason, self.manager)
        self.decide("role", line, previous=previous, reason=reason, active_peer=self.active_peer(),
                    peers={peer.uri: "up" if peer.up else "down" for peer in self.peers})
        self.write_state()
        self.wakeup.set()

    async def elect(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            await self.probe_round()
            await self._sleep(max(0.0, self.config["probe_interval"] - (time.monotonic() - started)))

    # -- deciding and running -------------------------------------------------------------

    def pending(self) -> bool:
        """Whether the live profiles call for a run (forced, or different from the last successful one)."""
        if self.fingerprint is None:
            return False
        return self.force_reason is not None or self.fingerprint != self.applied

    def due_in(self) -> float:
        """Seconds until a pending run may start (debounce, backoff)."""
        now = time.monotonic()
        due = max(max(self.last_change, self.activated_at) + self.config["debounce"],
                  self.started_at + self.config["settle"])
        if self.failures:
            due = max(due, self.next_retry)
        return max(0.0, due - now)

    def trigger(self, fingerprint: Fingerprint) -> t.Tuple[str, t.Dict[str, t.Any]]:
        """The reason (one line) and the trigger (JSON) of a run acting on ``fingerprint``."""
        diff = diff_fingerprints(self.applied, fingerprint)
        parts = describe_diff(diff, fingerprint) if self.applied is not None else []
        if self.force_reason:
            parts.insert(0, self.force_reason)
        if self.applied is None:
            parts.append("no successful run yet; live nodes: %s" % (", ".join(sorted(fingerprint)) or "none"))
        if self.failures and self.last_run is not None:
            parts.insert(0, "retry %d after rc %s" % (self.failures, self.last_run.get("rc")))
        if not parts:
            parts.append("the live profiles differ from the last successful run")
        trigger = dict(diff)
        trigger.update({
            "event": "activated" if self.force_reason else ("retry" if self.failures else "change"),
            "nodes": sorted(fingerprint),
            "fingerprint": fingerprint_digest(fingerprint),
            "previous_fingerprint": fingerprint_digest(self.applied),
        })
        return "; ".join(parts), trigger

    async def evaluate(self) -> float:
        """Run the command if it is due; the seconds until the next look."""
        interval = float(self.config["interval"])
        fingerprint = self.fingerprint
        if fingerprint is None or not self.pending():
            return interval
        delay = self.due_in()
        if delay > 0:
            return delay
        if self.role != "active":
            digest = fingerprint_digest(self.fingerprint)
            if digest != self.skipped_for:
                self.skipped_for = digest
                reason, trigger = self.trigger(fingerprint)
                self.decide("skip", "%s; passive (active manager %s), not running" % (reason, self.active_peer()),
                            reason=reason, trigger=trigger, active_peer=self.active_peer(), why="passive")
            return interval
        await self.reconcile(fingerprint)
        return 0.0

    async def reconcile(self, acted_on: Fingerprint) -> RunResult:
        """Run the command for the live profiles ``acted_on``, under the lock, and record the outcome."""
        lock = FileLock(self.config["lock_file"])
        try:
            locked = await lock.acquire(self.stopping)
        except OSError as exc:
            LOG.error("error: cannot lock %s: %s", self.config["lock_file"], exc)
            self.failures += 1
            self.next_retry = time.monotonic() + self.backoff()
            return RunResult(None, "cannot lock %s: %s" % (self.config["lock_file"], exc), "")
        if not locked:
            return RunResult(None, "stopped while waiting for the lock", "")
        # The command reads the registry itself once it runs: what changed
        # while another run held the lock is part of this run.
        acted_on = self.fingerprint or acted_on
        reason, trigger = self.trigger(acted_on)
        LOG.info("%s; running %s", reason, os.path.basename(self.config["command"][0]))
        self.running = True
        started_wall, started = time.time(), time.monotonic()
        self.write_state()
        try:
            result = await self.run_command(reason, trigger, started_wall)
        finally:
            lock.release()
            self.running = False
        finished_wall = time.time()
        duration = round(time.monotonic() - started, 3)
        moves = []  # type: t.List[t.Dict[str, t.Any]]
        unplaced = []  # type: t.List[t.Dict[str, t.Any]]
        plan_problem = None  # type: t.Optional[str]
        if self.config["plan_file"]:
            plan, plan_problem = read_plan(self.config["plan_file"], started_wall)
            if plan is not None:
                moves, unplaced = plan_outcome(plan)
        output_tail = tail(result.log, self.config["tail_lines"]) if result.log else []
        self.last_run = {"started": now_iso(started_wall), "finished": now_iso(finished_wall), "rc": result.rc,
                         "reason": reason, "moves": moves, "unplaced": unplaced, "log": result.log,
                         "duration": duration}
        if result.rc == 0:
            self.applied = acted_on
            self.failures = 0
            self.next_retry = 0.0
            self.force_reason = None
            line = "run finished rc=0 in %.1f s: %d moved, %d unplaced" % (duration, len(moves), len(unplaced))
        else:
            self.failures += 1
            delay = self.backoff()
            self.next_retry = time.monotonic() + delay
            line = "run failed (%s) after %.1f s; retrying in %g s at the earliest" % (
                result.error or "rc=%s" % result.rc, duration, delay)
        self.decide("run", line, trigger=trigger, reason=reason, rc=result.rc, error=result.error or None,
                    started=self.last_run["started"], finished=self.last_run["finished"], duration=duration,
                    moves=moves, unplaced=unplaced, plan=self.config["plan_file"] or None,
                    plan_problem=plan_problem, log=result.log, output_tail=output_tail,
                    command=self.config["command"])
        if result.rc != 0:
            for text in output_tail[-5:]:
                LOG.info("  | %s", text)
        elif plan_problem:
            LOG.warning("%s", plan_problem)
        for move in moves:
            LOG.info("%s", move_line(move))
        for entry in unplaced:
            LOG.info("%s unplaced: %s", entry["service"], entry["why"])
        self.write_state()
        return result

    def backoff(self) -> float:
        """Seconds before retrying after the latest failure: doubling, capped."""
        return float(min(self.config["retry_backoff"] * (2 ** (self.failures - 1)), self.config["retry_backoff_max"]))

    async def run_command(self, reason: str, trigger: t.Dict[str, t.Any], started_wall: float) -> RunResult:
        """The command with its reason in the environment and its output in a log file of its own."""
        argv = self.config["command"]
        stamp = datetime.datetime.fromtimestamp(started_wall, datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        log_path = os.path.join(self.config["log_dir"], "run-%s.log" % stamp)
        env = dict(os.environ)
        env.update(self.config["environment"])
        env["NANOEDGE_RECONCILE_REASON"] = " ".join(reason.split())
        env["NANOEDGE_RECONCILE_TRIGGER"] = json.dumps(trigger, sort_keys=True)
        env["NANOEDGE_RECONCILE_MANAGER"] = self.manager
        if self.config["plan_file"]:
            env["NANOEDGE_RECONCILE_PLAN_FILE"] = self.config["plan_file"]
        with open(log_path, "wb") as output:
            output.write(("# %s %s\n# reason: %s\n" % (now_iso(started_wall), shlex.join(argv), reason)).encode())
            output.flush()
            try:
                # A session of its own: a timeout or a stop ends the whole
                # process tree (ansible-playbook forks workers), not just argv[0].
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=asyncio.subprocess.STDOUT,
                    env=env, start_new_session=True)
            except FileNotFoundError:
                error = "command not found: %s" % argv[0]
                output.write(("%s\n" % error).encode())
                return RunResult(127, error, log_path)
            except PermissionError:
                error = "command not executable: %s" % argv[0]
                output.write(("%s\n" % error).encode())
                return RunResult(126, error, log_path)
            except OSError as exc:
                error = "cannot start %s: %s" % (argv[0], exc)
                output.write(("%s\n" % error).encode())
                return RunResult(126, error, log_path)
            rc, error = await self._wait(proc)
        prune_run_logs(self.config["log_dir"], self.config["keep_runs"])
        return RunResult(rc, error, log_path)

    async def _wait(self, proc: t.Any) -> t.Tuple[t.Optional[int], str]:
        waiter = asyncio.ensure_future(proc.wait())
        stopper = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({waiter, stopper}, timeout=self.config["command_timeout"],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if waiter.done():
            return waiter.result(), ""
        if self.stopping.is_set():
            grace = self.config["stop_grace"]
            LOG.info("stopping: letting the running command finish (up to %g s)", grace)
            done, _pending = await asyncio.wait({waiter}, timeout=grace)
            if done:
                return waiter.result(), ""
            error = "terminated: still running %g s after the stop" % grace
        else:
            error = "timed out after %g s (command_timeout)" % self.config["command_timeout"]
        LOG.warning("%s: %s", shlex.join(self.config["command"][:1]), error)
        rc = await terminate(proc, waiter)
        return rc, error

    async def main_loop(self) -> None:
        while not self.stopping.is_set():
            delay = await self.evaluate()
            if delay <= 0:
                continue
            self.wakeup.clear()
            await self._sleep(delay, self.wakeup)

    async def _sleep(self, seconds: float, *events: asyncio.Event) -> None:
        """Sleep, ending early on stop or on any of ``events``."""
        waiters = [asyncio.ensure_future(event.wait()) for event in (self.stopping,) + events]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- entry points --------------------------------------------------------------------

    async def serve(self) -> None:
        """Watch, elect and reconcile until SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        await self.open_context()
        self.decide("start", "started as manager %s (%s), watching %s" % (
            self.manager, self.role.upper(), self.config["registry"]),
            active_peer=self.active_peer(), managers=self.config["managers"])
        self.write_state()
        tasks = [asyncio.ensure_future(self.watch())]
        if self.peers:
            tasks.append(asyncio.ensure_future(self.elect()))
        try:
            await self.main_loop()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.decide("stop", "stopped", active_peer=self.active_peer())
            self.write_state()
            await self.close_context()

    async def once(self, force: bool) -> int:
        """One look at the registry and the peers, and one run if due; the exit status."""
        await self.open_context()
        try:
            fingerprint = self.fingerprint if await self.fetch_once() else None
            if fingerprint is None:
                LOG.error("error: cannot read %s/profiles: %s", self.config["registry"], self.registry_error)
                self.write_state()
                return EXIT_UNREACHABLE
            for _attempt in range(self.config["probe_failures"] if self.peers else 0):
                await self.probe_round()
                if self.role == "active" or not any(peer.up and peer.failures for peer in self.peers):
                    break
                await asyncio.sleep(self.config["probe_interval"])
            if self.role == "active" and not force and self.last_run is not None and self.last_run.get("rc") == 0:
                self.force_reason = None  # a one-shot run only acts on what changed since the last success
            if force:
                self.force_reason = "run requested (--once --force)"
            # No debounce for a single evaluation: there is no burst to wait for.
            self.last_change = self.activated_at = time.monotonic() - self.config["debounce"]
            self.started_at -= self.config["settle"]
            if not self.pending():
                LOG.info("nothing changed since the last successful run (%s)", fingerprint_digest(self.applied))
                self.write_state()
                return EXIT_OK
            if self.role != "active":
                await self.evaluate()
                self.write_state()
                return EXIT_OK
            result = await self.reconcile(fingerprint)
            return EXIT_OK if result.rc == 0 else EXIT_RUN_FAILED
        finally:
            await self.close_context()

