# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the command: one run at a time under the lock, in a session of its
own with its output in a log file, ended on timeout or stop; and the retries
after a failure.

Each run carries the term of the lease it started under and this manager's
name as the extra variables ``nanoedge_fence_term`` and ``nanoedge_fence_manager``
(``-e`` with a JSON object, so the term stays an integer): the nodes refuse a
change from a term below the highest they have seen."""

from __future__ import annotations

import asyncio
import datetime
import errno
import fcntl
import json
import logging
import os
import shlex
import signal
import time
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._plan import read_plan
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.plan import move_line, plan_outcome
from ansible_collections.nanoedge.core.plugins.module_utils._reconcile.state import now_iso

LOG = logging.getLogger("nanoedge.reconcile")

# After SIGTERM to a timed-out or interrupted command's process group, how
# long it gets before SIGKILL.
KILL_AFTER = 5.0
LOCK_POLL = 0.1


def tail(path: str, lines: int) -> t.List[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return []
    return [line.rstrip("\r") for line in data.decode("utf-8", errors="replace").splitlines()[-lines:]]


ERROR_STARTS = ("fatal: [", "failed: [", "[ERROR]:", "ERROR!")
MAX_ERRORS = 5
MAX_ERROR_CHARS = 600


def errors_in(path: str) -> t.List[str]:
    """What a failed run said went wrong: its first ``MAX_ERRORS`` error messages (ansible-playbook's
    ``fatal: [host]: ...``, ``failed: [host] ...``, ``[ERROR]: ...``), each with the lines that continue it
    up to the next blank line, cut at ``MAX_ERROR_CHARS``. The tail of the output is the tasks' timings."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(4 << 20).decode("utf-8", errors="replace")
    except OSError:
        return []
    errors: t.List[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not line.lstrip().startswith(ERROR_STARTS):
            continue
        parts = [line.strip()]
        for following in lines[index + 1:index + 40]:
            if not following.strip() or following.lstrip().startswith(ERROR_STARTS):
                break
            parts.append(following.strip())
        message = " ".join(parts)
        errors.append(message if len(message) <= MAX_ERROR_CHARS else message[:MAX_ERROR_CHARS - 3] + "...")
        if len(errors) == MAX_ERRORS:
            break
    return errors


def prune_run_logs(directory: str, keep: int) -> None:
    try:
        logs = sorted(name for name in os.listdir(directory) if name.startswith("run-") and name.endswith(".log"))
    except OSError:
        return
    for name in logs[:-keep]:
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


class FileLock:
    """``flock(LOCK_EX)`` on a file, waited for without blocking the event loop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = None  # type: t.Optional[int]

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """True once held; False when ``stopping`` was set while waiting."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if not waited:
                    LOG.info("waiting for the lock %s (another run holds it)", self.path)
                    waited = True
                if stopping.is_set():
                    os.close(fd)
                    return False
                await asyncio.sleep(LOCK_POLL)
                continue
            self.fd = fd
            return True

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class RunResult(t.NamedTuple):
    rc: t.Optional[int]
    error: str
    log: str


async def terminate(proc: t.Any, waiter: t.Any) -> t.Optional[int]:
    """SIGTERM to the command's process group, SIGKILL if it lingers."""
    for signum, wait in ((signal.SIGTERM, KILL_AFTER), (signal.SIGKILL, KILL_AFTER)):
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
        done, _pending = await asyncio.wait({waiter}, timeout=wait)
        if done:
            return waiter.result()
    return None


# (term, manager name) of the lease a run started under
Fence = t.Tuple[int, str]


# A run (ansible-playbook and its forks) yields the CPU to the manager's own registry and this daemon:
# the beats and the lease renewals must not wait behind a deploy, or the lease lapses while it runs.
RUN_NICENESS = 10


def _run_nicely() -> None:
    os.nice(RUN_NICENESS)


def fence_argv(command: t.Sequence[str], fence: t.Optional[Fence]) -> t.List[str]:
    """The command with the run's term and manager as extra variables (last, so they win)."""
    if fence is None:
        return list(command)
    extra = {"nanoedge_fence_term": fence[0], "nanoedge_fence_manager": fence[1]}
    return list(command) + ["-e", json.dumps(extra, sort_keys=True)]


class RunReport(t.NamedTuple):
    """A finished run as the decision log records it."""

    result: RunResult
    line: str
    fields: t.Dict[str, t.Any]


class Runner:
    """The command of the configuration, and what its runs left behind."""

    def __init__(self, config: t.Mapping[str, t.Any], manager: str, stopping: asyncio.Event,
                 on_start: t.Callable[[], None]) -> None:
        self.config = config
        self.manager = manager
        self.stopping = stopping
        self.on_start = on_start
        self.last_run: t.Optional[t.Dict[str, t.Any]] = None
        self.failures = 0
        self.next_retry = 0.0
        self.running = False

    def backoff(self) -> float:
        """Seconds before retrying after the latest failure: doubling, capped."""
        return float(min(self.config["retry_backoff"] * (2 ** (self.failures - 1)), self.config["retry_backoff_max"]))

    def _failed(self) -> float:
        self.failures += 1
        delay = self.backoff()
        self.next_retry = time.monotonic() + delay
        return delay

    async def lock(self) -> t.Union[FileLock, RunResult]:
        """The lock, held; or, when there is no run, why (a RunResult without rc)."""
        lock = FileLock(self.config["lock_file"])
        try:
            locked = await lock.acquire(self.stopping)
        except OSError as exc:
            LOG.error("error: cannot lock %s: %s", self.config["lock_file"], exc)
            self._failed()
            return RunResult(None, "cannot lock %s: %s" % (self.config["lock_file"], exc), "")
        if not locked:
            return RunResult(None, "stopped while waiting for the lock", "")
        return lock

    async def run(self, lock: FileLock, reason: str, trigger: t.Dict[str, t.Any],
                  fence: t.Optional[Fence] = None, command: t.Optional[t.Sequence[str]] = None,
                  on_success: t.Optional[t.Callable[[], None]] = None) -> RunReport:
        """Run ``command`` (the configuration's by default) under ``lock`` (released at the end) with the term
        of ``fence``; ``on_success`` before the outcome is read (it may write the plan file); record it."""
        argv = list(command or self.config["command"])
        LOG.info("%s; running %s%s", reason, os.path.basename(argv[0]),
                 " at term %d" % fence[0] if fence else "")
        self.running = True
        started_wall, started = time.time(), time.monotonic()
        self.on_start()
        try:
            result = await self.run_command(reason, trigger, started_wall, fence, argv)
            if result.rc == 0 and on_success is not None:
                on_success()
        finally:
            lock.release()
            self.running = False
        return self.finish(result, reason, started_wall, time.time(), round(time.monotonic() - started, 3), fence,
                           argv)

    def finish(self, result: RunResult, reason: str, started_wall: float, finished_wall: float,
               duration: float, fence: t.Optional[Fence] = None,
               command: t.Optional[t.Sequence[str]] = None) -> RunReport:
        """Record a run (wall clock times): the plan it left, the retry it calls for, its line."""
        moves: t.List[t.Dict[str, t.Any]] = []
        unplaced: t.List[t.Dict[str, t.Any]] = []
        plan_problem: t.Optional[str] = None
        if self.config["plan_file"]:
            plan, plan_problem = read_plan(self.config["plan_file"], started_wall)
            if plan is not None:
                moves, unplaced = plan_outcome(plan)
        output_tail = tail(result.log, self.config["tail_lines"]) if result.log else []
        errors = errors_in(result.log) if result.log and result.rc != 0 else []
        self.last_run = {"started": now_iso(started_wall), "finished": now_iso(finished_wall), "rc": result.rc,
                         "reason": reason, "moves": moves, "unplaced": unplaced, "log": result.log,
                         "duration": duration}
        if result.rc == 0:
            self.failures = 0
            self.next_retry = 0.0
            line = "run finished rc=0 in %.1f s: %d moved, %d unplaced" % (duration, len(moves), len(unplaced))
        else:
            line = "run failed (%s) after %.1f s; retrying in %g s at the earliest" % (
                result.error or "rc=%s" % result.rc, duration, self._failed())
        fields = {"reason": reason, "rc": result.rc, "error": result.error or None,
                  "started": self.last_run["started"], "finished": self.last_run["finished"], "duration": duration,
                  "moves": moves, "unplaced": unplaced, "errors": errors, "plan": self.config["plan_file"] or None,
                  "plan_problem": plan_problem, "log": result.log, "output_tail": output_tail,
                  "command": list(command or self.config["command"]), "term": fence[0] if fence else None}
        return RunReport(result, line, fields)

    @staticmethod
    def log_details(report: RunReport) -> None:
        """The journal's lines under a run's decision: the output's end of a failed run, or the plan."""
        fields = report.fields
        if report.result.rc != 0:
            for text in fields["errors"] or fields["output_tail"][-5:]:
                LOG.info("  | %s", text)
        elif fields["plan_problem"]:
            LOG.warning("%s", fields["plan_problem"])
        for move in fields["moves"]:
            LOG.info("%s", move_line(move))
        for entry in fields["unplaced"]:
            LOG.info("%s unplaced: %s", entry["service"], entry["why"])

    async def run_command(self, reason: str, trigger: t.Dict[str, t.Any], started_wall: float,
                          fence: t.Optional[Fence] = None, command: t.Optional[t.Sequence[str]] = None) -> RunResult:
        """The command with its term, its reason in the environment and its output in a log file of its own."""
        argv = fence_argv(command or self.config["command"], fence)
        stamp = datetime.datetime.fromtimestamp(started_wall, datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        log_path = os.path.join(self.config["log_dir"], "run-%s.log" % stamp)
        with open(log_path, "wb") as output:
            output.write(("# %s %s\n# reason: %s\n" % (now_iso(started_wall), shlex.join(argv), reason)).encode())
            output.flush()
            try:
                # A session of its own: a timeout or a stop ends the whole
                # process tree (ansible-playbook forks workers), not just argv[0].
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=asyncio.subprocess.STDOUT,
                    env=self._environment(reason, trigger, fence), start_new_session=True,
                    preexec_fn=_run_nicely)
            except OSError as exc:
                rc, error = _start_failure(argv[0], exc)
                output.write(("%s\n" % error).encode())
                return RunResult(rc, error, log_path)
            rc, error = await self._wait(proc)
        prune_run_logs(self.config["log_dir"], self.config["keep_runs"])
        return RunResult(rc, error, log_path)

    def _environment(self, reason: str, trigger: t.Dict[str, t.Any], fence: t.Optional[Fence]) -> t.Dict[str, str]:
        env = dict(os.environ)
        env.update(self.config["environment"])
        env["NANOEDGE_RECONCILE_REASON"] = " ".join(reason.split())
        env["NANOEDGE_RECONCILE_TRIGGER"] = json.dumps(trigger, sort_keys=True)
        env["NANOEDGE_RECONCILE_MANAGER"] = self.manager
        if fence is not None:
            env["NANOEDGE_RECONCILE_TERM"] = str(fence[0])
        if self.config["plan_file"]:
            env["NANOEDGE_RECONCILE_PLAN_FILE"] = self.config["plan_file"]
        return env

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


def _start_failure(program: str, exc: OSError) -> t.Tuple[int, str]:
    """(rc, error) as a shell would give them for a command that could not start."""
    if isinstance(exc, FileNotFoundError):
        return 127, "command not found: %s" % program
    if isinstance(exc, PermissionError):
        return 126, "command not executable: %s" % program
    return 126, "cannot start %s: %s" % (program, exc)
