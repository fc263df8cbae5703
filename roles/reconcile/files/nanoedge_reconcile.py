# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nanoedge continuous reconcile: watch the local CoAP profile registry
(DESIGN.md, Contract 4) and run the plan + deploy command when the set of
live nodes or what they offer changes.

Runs on every manager. The managers are listed in priority order; a manager
is active only while no manager before it answers, so exactly one of them
acts and a backup takes over when the active one stops answering. Only the
active manager runs the command.

What counts as a change is the fingerprint of the live profiles: per node its
capabilities, power source, networks and architecture. Free memory, load and
the collection time move on every report and are left out. A change is
debounced (a burst of reports gives one run), runs never overlap (an flock
on the lock file, also against other programs that take it), a failed run is
retried with an exponential backoff, and every decision goes to the journal
(one line each) and to STATE_DIR/decisions.jsonl (one JSON object each).

Run by the nanoedge.core.reconcile role as::

    python3 nanoedge_reconcile.py --config /etc/nanoedge-reconcile/config.json

Exit status: 0 after a clean stop (or, with --once, when nothing had to run or
the run succeeded), 1 when the --once run failed, 2 for a bad configuration,
3 when --once could not read the registry.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
import typing as t
import urllib.parse

try:
    import aiocoap
    import aiocoap.error
    HAS_AIOCOAP = True
    AIOCOAP_IMPORT_ERROR = None  # type: t.Optional[str]
except ImportError as exc:  # pragma: no cover - the role installs aiocoap
    aiocoap = None  # type: ignore[assignment]
    HAS_AIOCOAP = False
    AIOCOAP_IMPORT_ERROR = "%s: %s" % (type(exc).__name__, exc)

PROG = "nanoedge-reconcile"
DEFAULT_CONFIG = "/etc/nanoedge-reconcile/config.json"
DEFAULT_STATE_DIR = "/var/lib/nanoedge-reconcile"
LOG = logging.getLogger("nanoedge.reconcile")

DEFAULT_PORT = 5683
CF_JSON = 50
EXIT_OK, EXIT_RUN_FAILED, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3
# After SIGTERM to a timed-out or interrupted command's process group, how
# long it gets before SIGKILL.
KILL_AFTER = 5.0
LOCK_POLL = 0.1

Number = t.Union[int, float]

# key: (accepted types, default); None as default means required.
CONFIG_KEYS = {
    "registry": (str, None),
    "command": (list, None),
    "managers": (list, []),
    "self": ((int, str), None),
    "state_dir": (str, DEFAULT_STATE_DIR),
    "lock_file": (str, ""),
    "plan_file": (str, ""),
    "log_dir": (str, ""),
    "keep_runs": (int, 20),
    "tail_lines": (int, 20),
    "interval": ((int, float), 30),
    "debounce": ((int, float), 2),
    # after the daemon starts, no run for this long: the manager's own registry may have been down with
    # it and holds profiles from before until the workers report again
    "settle": ((int, float), 0),
    "probe_interval": ((int, float), 5),
    "probe_timeout": ((int, float), 2),
    "probe_failures": (int, 2),
    "request_timeout": ((int, float), 10),
    "command_timeout": ((int, float), 600),
    "stop_grace": ((int, float), 30),
    "retry_backoff": ((int, float), 30),
    "retry_backoff_max": ((int, float), 600),
    "oscore_context": (str, ""),
    "environment": (dict, {}),
}  # type: t.Dict[str, t.Tuple[t.Any, t.Any]]

TYPE_NAMES = {
    str: "a string", list: "a list", dict: "an object", int: "an integer",
    (int, float): "a number", (int, str): "an index or a URI",
}  # type: t.Dict[t.Any, str]

POSITIVE_NUMBERS = ("interval", "debounce", "probe_interval", "probe_timeout", "request_timeout",
                    "command_timeout", "retry_backoff", "retry_backoff_max")


class ConfigError(Exception):
    """The configuration is unusable; the message names the key at fault."""


# --------------------------------------------------------------------------
# Configuration.

def parse_registry_uri(value: t.Any, key: str) -> str:
    """``coap://host[:port]`` with nothing else; returned normalised with the port."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("%s must be a coap://host[:port] URI, got %r" % (key, value))
    try:
        parts = urllib.parse.urlsplit(value.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError("%s %r: %s" % (key, value, exc)) from None
    if parts.scheme != "coap":
        raise ConfigError("%s %r: the scheme must be coap://" % (key, value))
    if not parts.hostname:
        raise ConfigError("%s %r: no host" % (key, value))
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("%s %r: give only coap://host[:port]; the registry's paths are fixed" % (key, value))
    host = "[%s]" % parts.hostname if ":" in parts.hostname else parts.hostname
    return "coap://%s:%d" % (host, port or DEFAULT_PORT)


def validate_config(raw: t.Any) -> t.Dict[str, t.Any]:
    """The configuration with defaults filled in; ConfigError names the first bad key."""
    if not isinstance(raw, dict):
        raise ConfigError("must be a JSON object")
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError("unknown key(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(CONFIG_KEYS))))
    config = {}  # type: t.Dict[str, t.Any]
    for key, (kind, default) in CONFIG_KEYS.items():
        if key not in raw:
            if default is None and key != "self":
                raise ConfigError("%s is required" % key)
            config[key] = json.loads(json.dumps(default))
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError("%s must be %s, got %s" % (key, TYPE_NAMES[kind], json.dumps(value)))
        config[key] = value

    config["registry"] = parse_registry_uri(config["registry"], "registry")
    command = config["command"]
    if not command or not all(isinstance(arg, str) for arg in command) or not command[0]:
        raise ConfigError("command must be a non-empty list of strings (the argv of the reconcile command)")
    for key in POSITIVE_NUMBERS:
        if not config[key] > 0:
            raise ConfigError("%s must be > 0, got %s" % (key, config[key]))
    for key in ("stop_grace", "settle"):
        if config[key] < 0:
            raise ConfigError("%s must be >= 0, got %s" % (key, config[key]))
    for key in ("keep_runs", "tail_lines", "probe_failures"):
        if config[key] < 1:
            raise ConfigError("%s must be >= 1, got %s" % (key, config[key]))
    if config["retry_backoff_max"] < config["retry_backoff"]:
        raise ConfigError("retry_backoff_max must be >= retry_backoff (%s), got %s"
                          % (config["retry_backoff"], config["retry_backoff_max"]))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in config["environment"].items()):
        raise ConfigError("environment must map names to strings")

    managers = [parse_registry_uri(uri, "managers[%d]" % index) for index, uri in enumerate(config["managers"])]
    if len(set(managers)) != len(managers):
        raise ConfigError("managers lists a URI twice")
    config["managers"] = managers
    config["self"] = _self_index(config.get("self"), managers, config["registry"])
    if not os.path.isabs(config["state_dir"]):
        raise ConfigError("state_dir must be an absolute path, got %r" % config["state_dir"])
    config["lock_file"] = config["lock_file"] or os.path.join(config["state_dir"], "reconcile.lock")
    config["log_dir"] = config["log_dir"] or os.path.join(config["state_dir"], "runs")
    return config


def _self_index(value: t.Any, managers: t.List[str], registry: str) -> t.Optional[int]:
    """Where this manager stands in ``managers`` (None: no managers, always active)."""
    if not managers:
        if value is not None:
            raise ConfigError("self is set but managers is empty")
        return None
    if value is None:
        if registry in managers:
            return managers.index(registry)
        raise ConfigError("self is required: registry %s is not one of managers" % registry)
    if isinstance(value, int):
        if not 0 <= value < len(managers):
            raise ConfigError("self must be an index into managers (0 to %d), got %d" % (len(managers) - 1, value))
        return value
    uri = parse_registry_uri(value, "self")
    if uri not in managers:
        raise ConfigError("self %s is not one of managers (%s)" % (uri, ", ".join(managers)))
    return managers.index(uri)


def load_config(path: str) -> t.Dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError("cannot read it: %s" % exc) from None
    return validate_config(raw)


# --------------------------------------------------------------------------
# What a change is.

Fingerprint = t.Dict[str, t.Dict[str, t.Any]]


def _string_list(value: t.Any) -> t.List[str]:
    if not isinstance(value, list):
        return []
    return sorted({item for item in value if isinstance(item, str)})


def node_fingerprint(profile: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """What placement depends on and what does not drift between reports."""
    power = profile.get("power")
    return {
        "capabilities": _string_list(profile.get("capabilities")),
        "power": power.get("source") if isinstance(power, dict) else None,
        "network": _string_list(profile.get("network")),
        "arch": profile.get("arch") if isinstance(profile.get("arch"), str) else None,
    }


def valid_fingerprint_entry(entry: t.Any) -> bool:
    """A per-node fingerprint as node_fingerprint makes it (read back from state.json)."""
    if not isinstance(entry, dict) or set(entry) != {"capabilities", "power", "network", "arch"}:
        return False
    return (all(isinstance(entry[key], list) and all(isinstance(i, str) for i in entry[key])
                for key in ("capabilities", "network"))
            and all(entry[key] is None or isinstance(entry[key], str) for key in ("power", "arch")))


def fingerprint_of(profiles: t.Any) -> t.Tuple[Fingerprint, t.List[str]]:
    """(fingerprint, problems) of a ``GET /profiles`` answer; raises ValueError when it is no object."""
    if not isinstance(profiles, dict):
        raise ValueError("expected a JSON object node -> profile, got %s" % type(profiles).__name__)
    result = {}  # type: Fingerprint
    problems = []
    for node in sorted(profiles):
        profile = profiles[node]
        if not isinstance(profile, dict):
            problems.append("profile of %s is %s, not an object" % (node, type(profile).__name__))
            continue
        result[node] = node_fingerprint(profile)
    return result, problems


def fingerprint_digest(fingerprint: t.Optional[Fingerprint]) -> t.Optional[str]:
    if fingerprint is None:
        return None
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()[:16]


def diff_fingerprints(before: t.Optional[Fingerprint], after: Fingerprint) -> t.Dict[str, t.Any]:
    """Nodes added and removed, and per kept node what changed."""
    before = before or {}
    changed = {}  # type: t.Dict[str, t.Dict[str, t.Any]]
    for node in sorted(set(before) & set(after)):
        old, new = before[node], after[node]
        entry = {}  # type: t.Dict[str, t.Any]
        for key in ("capabilities", "network"):
            gained = sorted(set(new[key]) - set(old[key]))
            lost = sorted(set(old[key]) - set(new[key]))
            if gained:
                entry[key + "_added"] = gained
            if lost:
                entry[key + "_removed"] = lost
        for key in ("power", "arch"):
            if old.get(key) != new.get(key):
                entry[key] = [old.get(key), new.get(key)]
        if entry:
            changed[node] = entry
    return {
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": changed,
    }


def describe_diff(diff: t.Mapping[str, t.Any], after: Fingerprint) -> t.List[str]:
    parts = []
    for node in diff["added"]:
        caps = after[node]["capabilities"]
        parts.append("%s joined (%s)" % (node, "capabilities " + ", ".join(caps) if caps else "no capabilities"))
    for node in diff["removed"]:
        parts.append("%s left (no live profile: lease expired or deleted)" % node)
    for node, entry in diff["changed"].items():
        for key, nouns in (("capabilities", ("capability", "capabilities")), ("network", ("network", "networks"))):
            for verb, suffix in (("gained", "_added"), ("lost", "_removed")):
                items = entry.get(key + suffix)
                if items:
                    parts.append("%s %s %s %s" % (node, verb, nouns[len(items) > 1], ", ".join(items)))
        for key in ("power", "arch"):
            if key in entry:
                parts.append("%s %s %s -> %s" % (node, key, entry[key][0], entry[key][1]))
    return parts


# --------------------------------------------------------------------------
# The plan the command leaves behind.

def summarize_reasons(entry: t.Mapping[str, t.Any]) -> str:
    """One line for an unplaced service: its own ``reason``, or the per-node ``reasons`` condensed."""
    reason = entry.get("reason")
    if isinstance(reason, str) and reason:
        return reason
    reasons = entry.get("reasons")
    if not isinstance(reasons, dict) or not reasons:
        return "no live node"
    texts = sorted({str(text) for text in reasons.values()})
    if len(texts) == 1:
        text = texts[0]
        if text.startswith("missing capability "):
            return "no live node has capability %s" % text[len("missing capability "):]
        return "every node: %s" % text
    return "; ".join("%s: %s" % (node, text) for node, text in sorted(reasons.items(), key=lambda i: str(i[0])))


def read_plan(path: str, since: float) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], t.Optional[str]]:
    """(plan, problem): the plan JSON if the command wrote it after ``since`` (wall clock)."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None, "the command wrote no plan file %s" % path
    except OSError as exc:
        return None, "cannot read the plan file %s: %s" % (path, exc)
    # mtime has the file system's granularity; a plan written in the first
    # instant of the run must still count as new.
    if stat.st_mtime < since - 0.01:
        return None, "the plan file %s is older than this run" % path
    try:
        with open(path, encoding="utf-8") as handle:
            plan = json.load(handle)
    except (OSError, ValueError) as exc:
        return None, "cannot read the plan file %s: %s" % (path, exc)
    if not isinstance(plan, dict):
        return None, "the plan file %s holds no JSON object" % path
    return plan, None


def plan_outcome(plan: t.Mapping[str, t.Any]) -> t.Tuple[t.List[t.Dict[str, t.Any]], t.List[t.Dict[str, t.Any]]]:
    """(moves, unplaced) as the decision log records them, each with a ``why``."""
    why = plan.get("why") if isinstance(plan.get("why"), dict) else {}
    moves = []
    for move in plan.get("moves") or []:
        if not isinstance(move, dict) or not isinstance(move.get("service"), str):
            continue
        text = move.get("why") if isinstance(move.get("why"), str) else why.get(move["service"])
        moves.append({"service": move["service"], "from": move.get("from"), "to": move.get("to"),
                      "why": text if isinstance(text, str) else ""})
    unplaced = []
    for entry in plan.get("unplaced") or []:
        if isinstance(entry, dict) and isinstance(entry.get("service"), str):
            unplaced.append({"service": entry["service"], "why": summarize_reasons(entry)})
    return moves, unplaced


def move_line(move: t.Mapping[str, t.Any]) -> str:
    text = "moved %s %s -> %s" % (move["service"], move.get("from") or "(nowhere)", move.get("to") or "(nowhere)")
    return text + (" (%s)" % move["why"] if move.get("why") else "")


# --------------------------------------------------------------------------
# Files.

def now_iso(wall: t.Optional[float] = None) -> str:
    moment = datetime.datetime.fromtimestamp(time.time() if wall is None else wall, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def write_json_atomically(path: str, value: t.Any) -> None:
    """Readers see the old file or the new one, never a torn one, even after a power cut."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


# --------------------------------------------------------------------------
# The daemon.

class Peer:
    """A manager before this one in the priority list."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.failures = 0
        self.up = True  # until it fails probe_failures times in a row
        self.last_error = ""


class RunResult(t.NamedTuple):
    rc: t.Optional[int]
    error: str
    log: str


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


def describe_error(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno)
    text = str(exc)
    return text if text else type(exc).__name__


def parse_args(argv: t.Optional[t.Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Watch the profile registry and run plan + deploy when the live nodes change"
                               " (only on the active manager).")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="configuration file (default %(default)s)")
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--once", action="store_true",
                        help="read the registry and the peers once, run the command if something changed since"
                             " the last successful run, and exit")
    parser.add_argument("--force", action="store_true", help="with --once: run even when nothing changed")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if args.force and not args.once:
        parser.error("--force needs --once")
    return args


def main(argv: t.Optional[t.Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="reconcile: %(message)s")
    # aiocoap reports every unanswered request and ICMP error itself; the
    # daemon logs each outage once.
    logging.getLogger("coap").setLevel(logging.CRITICAL)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("%s: configuration %s: %s" % (PROG, args.config, exc), file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print("%s: configuration %s is valid" % (PROG, args.config))
        return EXIT_OK
    if not HAS_AIOCOAP:
        print("%s: the Python library aiocoap is missing for %s (%s)" % (PROG, sys.executable, AIOCOAP_IMPORT_ERROR),
              file=sys.stderr)
        return EXIT_CONFIG

    async def run() -> int:
        reconciler = Reconciler(config)
        reconciler.prepare_dirs()
        reconciler.load_state()
        if args.once:
            return await reconciler.once(args.force)
        await reconciler.serve()
        return EXIT_OK

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        print("%s: configuration %s: %s" % (PROG, args.config, exc), file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print("%s: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
