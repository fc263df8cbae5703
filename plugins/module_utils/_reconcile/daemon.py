# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon: watch, hold the leadership lease, and run the command when the live profiles call for it.

The parts each keep their own state: the Watcher the live profiles, the
Damper which nodes change too often to be acted on, the Election this
manager's role (from the lease the LeaseKeeper renews), the Runner the runs
and their retries. The Reconciler decides from them whether a run is due and
why, and writes the state file and the decision log. A run carries the term
of the lease it started under to the nodes, which refuse it once they have
seen a higher term (docs/contracts.md, "The CoAP API").
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.damping import Damper
from ansible_collections.nanoedge.core.plugins.module_utils._leadership import DEFAULT_LEASE
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.election import Election, RoleChange
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.fingerprint import (
    Fingerprint, describe_diff, diff_fingerprints, fingerprint_digest,
)
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.lease import LeaseKeeper
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.runner import RunResult, Runner
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import StateFiles, now_iso
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.targeted import Move, Targeted
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.waiting import sleep_or_stop
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.watch import Watcher

LOG = logging.getLogger("nanoedge.reconcile")

EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3


def only_lost(before: t.Optional[Fingerprint], after: t.Optional[Fingerprint]) -> bool:
    """Whether ``after`` is ``before`` less some nodes, the others unchanged."""
    if not before or after is None or not set(after) < set(before):
        return False
    return all(before[node] == profile for node, profile in after.items())


class Reconciler:
    def __init__(self, config: t.Dict[str, t.Any], clock: t.Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.stopping = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.election = Election(config["registry"], config["lease_ttl"], clock)
        self.watcher = Watcher(config, self.stopping, on_change=self._profiles_changed, on_outage=self.write_state)
        self.keeper = LeaseKeeper(config, self.election, self.watcher.leadership, self._role_changed,
                                  on_renewal=lambda: self.write_state(durable=False))
        self.runner = Runner(config, self.election.manager, self.stopping, on_start=self.write_state)
        self.files = StateFiles(config["state_dir"])
        self.damper = Damper(config["flap_limit"], config["flap_window"], clock)
        # when the live profiles, as damped, last changed: the debounce counts from there
        self.last_change = 0.0
        self.started_at = clock()
        # set when the lease is granted: a manager that becomes active runs once whatever changed
        self.force_reason: t.Optional[str] = None
        # the term under which this process last became (or stayed) active
        self.led_term = 0
        # what the last successful run acted on
        self.applied: t.Optional[Fingerprint] = None
        self.skipped_for: t.Optional[str] = None
        self.targeted = Targeted(config)
        # when the last full run succeeded (targeted runs rely on what it found running)
        self.last_full: t.Optional[float] = None
        # Just became active: a change that moves services is deployed targeted first, from the plan and
        # services files this manager has, and the full run that must follow a takeover comes right after.
        self.takeover = False
        # the live nodes the last run that failed acted on (None after a success)
        self.failed_nodes: t.Optional[t.List[str]] = None
        # an operator asked for a full run (SIGHUP): it starts without waiting for a failure's backoff
        self.requested = False

    # -- files -----------------------------------------------------------------------

    def prepare_dirs(self) -> None:
        for directory in (self.config["state_dir"], self.config["log_dir"],
                          os.path.dirname(self.config["lock_file"])):
            os.makedirs(directory, exist_ok=True)

    def load_state(self) -> None:
        """Carry over what the last successful run acted on, so the first reasons are accurate."""
        self.applied, self.runner.last_run = self.files.load()

    def write_state(self, durable: bool = True) -> None:
        """The state file; rewritten after every lease renewal too (``durable`` False: no fsync once a
        second, the next write or the next start puts it right after a power cut)."""
        election, watcher, fingerprint = self.election, self.watcher, self.damper.view
        self.files.write({
            "role": election.role,
            "since": election.role_since,
            "manager": election.manager,
            "managers": self.config["managers"],
            "pid": os.getpid(),
            "updated": now_iso(),
            "registry": {"uri": self.config["registry"], "reachable": watcher.reachable(), "error": watcher.error},
            "fingerprint": fingerprint_digest(fingerprint),
            "fingerprint_nodes": sorted(fingerprint) if fingerprint is not None else [],
            "held": self.damper.held,
            "applied": self.applied,
            "applied_fingerprint": fingerprint_digest(self.applied),
            "last_run": self.runner.last_run,
            "failures": self.runner.failures,
            "running": self.runner.running,
            **election.snapshot(),
        }, durable)

    def decide(self, event: str, line: t.Optional[str], **fields: t.Any) -> None:
        """One decision: a line in the journal and a JSON line in decisions.jsonl."""
        if line:
            LOG.info("%s", line)
        record = {"time": now_iso(), "event": event, "manager": self.election.manager, "role": self.election.role}
        record.update(fields)
        self.files.append_decision(record)

    def _profiles_changed(self) -> None:
        self.live()
        self.write_state()
        self.wakeup.set()

    def live(self) -> t.Optional[Fingerprint]:
        """The live profiles as the daemon acts on them: the watcher's, with flapping nodes held."""
        before = self.damper.view
        view, events = self.damper.observe(self.watcher.fingerprint)
        if view != before:
            # a change a hold absorbs does not count; a release counts from now; nodes that are only lost do
            # not count either: the registry's failure detector confirmed them (confirm_after), so the
            # debounce would only delay moving their services
            released = any(event.kind == "release" for event in events)
            if released:
                self.last_change = self.clock()
            elif not only_lost(before, view):
                self.last_change = max(self.last_change, self.watcher.last_change)
        for event in events:
            self.decide(event.kind, event.line, node=event.node, changes=event.changes, held=self.damper.held)
        return view

    # -- leadership ------------------------------------------------------------------------

    def _role_changed(self, change: RoleChange) -> None:
        """A change of role is a logged decision; becoming active forces a run (a new term while
        staying active does not: the nodes take the new term with the next run)."""
        if change.role == "active":
            if change.previous != "active" and (change.term != self.led_term or self.applied is None):
                self.force_reason = "became active: %s" % change.why
                self.takeover = True
            # Back at the term it held: no other manager can have led meanwhile (its majority would
            # share a witness with this one's, and a witness refuses a term below one it granted),
            # so what this manager applied is still what runs; only what changed calls for a run.
            self.led_term = change.term
        else:
            self.force_reason = None
            self.takeover = False
            self.skipped_for = None
        self.decide("role", change.line, previous=change.previous, term=change.term, granted_by=change.granted_by,
                    majority=change.majority, members=change.members, why=change.why)
        if change.role != "active" and self.runner.running:
            # the run keeps its term: a node refuses its changes once it has seen a higher one
            LOG.warning("a run is continuing after losing the lease: it carries term %d, which the nodes refuse"
                        " once another manager has a higher one", change.term)
        self.write_state()
        self.wakeup.set()

    def full_run_requested(self) -> None:
        """SIGHUP (``systemctl reload``): a full run at once when active, whatever changed (an operator who
        changed a node by hand, a new image); ignored, with a line saying so, when passive."""
        if self.election.role != "active":
            why = "ignored, this manager is %s" % self.election.role
            self.decide("request", "a full run requested (SIGHUP): %s" % why, request="full run", why=why)
            return
        self.force_reason = "a full run requested (SIGHUP)"
        self.requested = True
        self.decide("request", self.force_reason, request="full run", why="active")
        self.wakeup.set()

    # -- deciding and running -------------------------------------------------------------

    def pending(self) -> bool:
        """Whether the live profiles call for a run (forced, or different from the last successful one)."""
        fingerprint = self.live()
        if fingerprint is None:
            return False
        return self.force_reason is not None or fingerprint != self.applied or self.full_due() is not None

    def full_due(self) -> t.Optional[str]:
        """Why the next run must be a full one, when only targeted runs happened for full_every seconds."""
        if not self.targeted.enabled or self.last_full is None:
            return None
        if self.clock() - self.last_full < self.config["full_every"]:
            return None
        return "a full run every %g s (full_every), the last %.0f s ago" % (
            self.config["full_every"], self.clock() - self.last_full)

    def due_in(self) -> float:
        """Seconds until a pending run may start (debounce, backoff)."""
        now = self.clock()
        due = max(max(self.last_change, self.election.activated_at) + self.config["debounce"],
                  self.started_at + self.config["settle"])
        if self.runner.failures and not self.requested and not self.nodes_changed_since_failure():
            due = max(due, self.runner.next_retry)
        return max(0.0, due - now)

    def nodes_changed_since_failure(self) -> bool:
        """Whether nodes came or went since the last run failed. Such a failure is most likely the change
        itself (a node that vanished in the middle of the run), and the next run acts on other nodes: it
        starts after the debounce, not after the backoff. Once per change of the node set: a run that fails
        again for the same nodes waits for its backoff."""
        fingerprint = self.live()
        return self.failed_nodes is not None and fingerprint is not None and sorted(fingerprint) != self.failed_nodes

    def trigger(self, fingerprint: Fingerprint) -> t.Tuple[str, t.Dict[str, t.Any]]:
        """The reason (one line) and the trigger (JSON) of a run acting on ``fingerprint``."""
        failures, last_run = self.runner.failures, self.runner.last_run
        diff = diff_fingerprints(self.applied, fingerprint)
        parts = describe_diff(diff, fingerprint) if self.applied is not None else []
        if self.force_reason:
            parts.insert(0, self.force_reason)
        if self.applied is None:
            parts.append("no successful run yet; live nodes: %s" % (", ".join(sorted(fingerprint)) or "none"))
        if failures and last_run is not None:
            parts.insert(0, "retry %d after rc %s" % (failures, last_run.get("rc")))
        if not parts:
            parts.append("the live profiles differ from the last successful run")
        trigger = dict(diff)
        trigger.update({
            "event": "activated" if self.force_reason else ("retry" if failures else "change"),
            "nodes": sorted(fingerprint),
            "fingerprint": fingerprint_digest(fingerprint),
            "previous_fingerprint": fingerprint_digest(self.applied),
        })
        return "; ".join(parts), trigger

    async def evaluate(self) -> float:
        """Run the command if it is due; the seconds until the next look."""
        interval = float(self.config["interval"])
        fingerprint = self.live()
        release = self.damper.next_release()
        if release is not None:
            interval = min(interval, release)  # look again when a held node is released
        if fingerprint is None or not self.pending():
            return interval
        delay = self.due_in()
        if delay > 0:
            return delay
        self.keeper.check()
        if not self.election.active():
            self._skip_as_passive(fingerprint)
            return interval
        await self.reconcile(fingerprint)
        return 0.0

    def _skip_as_passive(self, fingerprint: Fingerprint) -> None:
        """A passive manager logs each change it leaves to the active one, once."""
        digest = fingerprint_digest(fingerprint)
        if digest == self.skipped_for:
            return
        self.skipped_for = digest
        reason, trigger = self.trigger(fingerprint)
        problem = self.election.problem
        why = "passive (%s)" % ("no lease: %s" % problem if problem else "another manager holds the lease")
        self.decide("skip", "%s; %s, not running" % (reason, why), reason=reason, trigger=trigger, why="passive")

    async def reconcile(self, acted_on: Fingerprint) -> RunResult:
        """Run the command for the live profiles ``acted_on``, under the lock, and record the outcome."""
        lock = await self.runner.lock()
        if isinstance(lock, RunResult):
            return lock
        # the term is taken once the lock is held: waiting for it may have outlasted the lease
        self.keeper.check()
        fence = self.election.fence()
        if fence is None:
            lock.release()
            LOG.info("not running: the lease ran out before the run could start")
            return RunResult(None, "not the leader", "")
        # The command reads the registry itself once it runs: what changed
        # while another run held the lock is part of this run.
        acted_on = self.live() or acted_on
        reason, trigger = self.trigger(acted_on)
        self.requested = False
        move = self.targeted_move(reason)
        if isinstance(move, str):
            reason = move
        elif not move.touched():
            lock.release()
            return self.applied_in_place(move, acted_on, reason, trigger)
        else:
            try:
                self.targeted.write_move(move)
            except OSError as exc:
                reason = "%s; a full run: cannot write the move file: %s" % (reason, exc)
            else:
                trigger["targeted"] = move.hosts
                report = await self.runner.run(lock, "%s; targeted: %s" % (reason, move.describe()), trigger, fence,
                                               command=self.targeted.command(),
                                               on_success=lambda: self.commit_move(t.cast(Move, move)))
                return self.ran(report, acted_on, trigger, full=False)
        report = await self.runner.run(lock, reason, trigger, fence)
        return self.ran(report, acted_on, trigger, full=True)

    def commit_move(self, move: Move) -> None:
        """The plan file after a targeted run; when it cannot be written, the next run is a full one (the
        nodes run the new plan, the file still says the old one)."""
        try:
            self.targeted.commit(move)
        except OSError as exc:
            LOG.error("error: cannot write the plan file %s: %s; the next run is a full one",
                      self.config["plan_file"], exc)
            self.last_full = None

    def targeted_move(self, reason: str) -> t.Union[Move, str]:
        """The change re-planned here, or the reason of a full run (``reason``, with why not targeted)."""
        if not self.targeted.enabled or self.runner.failures:
            return reason
        if self.force_reason or self.last_full is None:
            return self.takeover_move(reason) if self.takeover else reason
        due = self.full_due()
        if due:
            return "%s; %s" % (reason, due)
        move = self.targeted.prepare(self.watcher.profiles)
        if isinstance(move, str):
            return "%s; a full run: %s" % (reason, move)
        return move

    def takeover_move(self, reason: str) -> t.Union[Move, str]:
        """After a takeover, the services that must move are moved at once, before the full run a new
        leader makes: it may have missed the last moves of the manager before it, but each node the move
        touches ends up running what the new plan gives it, and the full run puts right what it missed."""
        self.takeover = False
        move = self.targeted.prepare(self.watcher.profiles)
        if isinstance(move, str) or not move.touched():
            return reason
        LOG.info("taking over: %s first, then a full run", move.describe())
        return move

    def applied_in_place(self, move: Move, acted_on: Fingerprint, reason: str,
                         trigger: t.Dict[str, t.Any]) -> RunResult:
        """A change that moves nothing: the plan file brought up to date, no node touched."""
        try:
            self.targeted.commit(move)
        except OSError as exc:
            LOG.error("error: cannot write the plan file %s: %s", self.config["plan_file"], exc)
            return RunResult(None, "cannot write the plan file: %s" % exc, "")
        self.applied = acted_on
        unplaced = [entry["service"] for entry in move.document.get("unplaced") or []]
        self.decide("replan", "%s; re-planned here: %s, nothing to deploy%s" % (
            reason, move.describe(), " (unplaced: %s)" % ", ".join(unplaced) if unplaced else ""),
            reason=reason, trigger=trigger, unplaced=unplaced)
        self.write_state()
        return RunResult(0, "", "")

    def ran(self, report: t.Any, acted_on: Fingerprint, trigger: t.Dict[str, t.Any], full: bool) -> RunResult:
        self.failed_nodes = None if report.result.rc == 0 else sorted(acted_on)
        if report.result.rc == 0:
            self.applied = acted_on
            if full:  # a targeted run after a takeover leaves the forced full run to come
                self.force_reason = None
                self.last_full = self.clock()
        self.decide("run", report.line, trigger=trigger, targeted=not full, **report.fields)
        self.runner.log_details(report)
        self.write_state()
        return report.result

    async def main_loop(self) -> None:
        while not self.stopping.is_set():
            delay = await self.evaluate()
            if delay <= 0:
                continue
            self.wakeup.clear()
            await sleep_or_stop(self.stopping, delay, self.wakeup)

    # -- entry points --------------------------------------------------------------------

    async def serve(self) -> None:
        """Watch, keep the lease and reconcile until SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self.full_run_requested)
        self._obsolete_keys()
        await self.watcher.open()
        self.decide("start", "started as manager %s (passive until its registry grants the lease), watching %s" % (
            self.election.manager, self.config["registry"]), managers=self.config["managers"])
        self.write_state()
        # The lease is kept until the main loop is over, a run it let finish included.
        lease_done = asyncio.Event()
        tasks = [asyncio.ensure_future(self.watcher.watch()), asyncio.ensure_future(self.keeper.keep(lease_done))]
        try:
            await self.main_loop()
        finally:
            lease_done.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.keeper.withdraw()
            # a stopped daemon acts no more: its state file must not say active
            self.election.active_until = 0.0
            change = self.election.update("stopped: the candidacy withdrawn")
            if change is not None:
                self._role_changed(change)
            self.decide("stop", "stopped (the candidacy withdrawn)", term=self.election.term)
            self.write_state()
            await self.watcher.close()

    def _obsolete_keys(self) -> None:
        if self.config.get("obsolete"):
            LOG.warning("configuration key(s) %s are no longer used (the leadership lease replaced the probes of"
                        " the other managers); ignored", ", ".join(self.config["obsolete"]))

    async def once(self, force: bool) -> int:
        """One look at the registry, the lease, and one run if due and the leader; the exit status."""
        await self.watcher.open()
        lease_done = asyncio.Event()
        keeping: t.Optional[asyncio.Future] = None
        try:
            fingerprint = self.live() if await self.watcher.fetch_once() else None
            if fingerprint is None:
                LOG.error("error: cannot read %s/profiles: %s", self.config["registry"], self.watcher.error)
                self.write_state()
                return EXIT_UNREACHABLE
            # stand at once (no settle for a single look), renewing while the run lasts
            self.keeper.stand_from = self.clock()
            keeping = asyncio.ensure_future(self.keeper.keep(lease_done))
            await self.keeper.obtain(DEFAULT_LEASE, self.stopping)
            return await self._once_run(fingerprint, force)
        finally:
            lease_done.set()
            if keeping is not None:
                await asyncio.gather(keeping, return_exceptions=True)
                # This process acts no more; the candidacy is left to lapse (a daemon serving beside it
                # shares the registry's candidacy), but the state file must not say active.
                self.election.active_until = 0.0
                change = self.election.update("one look done (--once)")
                if change is not None:
                    self._role_changed(change)
            await self.watcher.close()

    async def _once_run(self, fingerprint: Fingerprint, force: bool) -> int:
        last_run = self.runner.last_run
        if self.election.role == "active" and not force and last_run is not None and last_run.get("rc") == 0:
            self.force_reason = None  # a one-shot run only acts on what changed since the last success
        if force:
            self.force_reason = "run requested (--once --force)"
        # No debounce for a single evaluation: there is no burst to wait for.
        self.last_change = self.election.activated_at = self.clock() - self.config["debounce"]
        self.started_at -= self.config["settle"]
        if not self.pending():
            LOG.info("nothing changed since the last successful run (%s)", fingerprint_digest(self.applied))
            self.write_state()
            return EXIT_OK
        if not self.election.active():
            await self.evaluate()
            self.write_state()
            return EXIT_OK
        result = await self.reconcile(fingerprint)
        return EXIT_OK if result.rc == 0 else EXIT_RUN_FAILED
