# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One request on standard input, one JSON result on standard output, and the exit code:

0 applied; 1 failed (``error`` says what, the other keys what was done before); 2 refused by the fence
(nothing changed when the first fence refuses); 3 a bad request (more than MAX_REQUEST bytes, not JSON, or a
field at fault, which ``error`` names), nothing done.
"""

from __future__ import annotations

import json
import sys
import typing as t

from ansible_collections.nanoedge.core.plugins.module_utils._docker_engine import DockerEngine
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.apply import EXIT_BAD_REQUEST, Apply
from ansible_collections.nanoedge.core.plugins.module_utils._node_apply.request import (
    Request,
    RequestError,
    check_request,
)

# A node's part of a plan is a few KiB per service.
MAX_REQUEST = 1 << 20
PROGRAM = "nanoedge.core node apply"


def read_request(stream: t.BinaryIO) -> Request:
    """The request on ``stream``, checked; RequestError when it is too large, not JSON or breaks a rule."""
    data = stream.read(MAX_REQUEST + 1)
    if len(data) > MAX_REQUEST:
        raise RequestError("request: more than %d bytes" % MAX_REQUEST)
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError("request: not UTF-8 text") from None
    except ValueError as exc:
        raise RequestError("request: not JSON (%s)" % exc) from None
    return check_request(value)


def run(stdin: t.BinaryIO, stdout: t.TextIO, engine_factory: t.Callable[[str], t.Any] = DockerEngine,
        **apply_options: t.Any) -> int:
    """Read, apply, answer; the exit code. ``apply_options`` go to ``Apply`` (tests give it the node's files)."""
    try:
        request = read_request(stdin)
    except RequestError as exc:
        code, result = EXIT_BAD_REQUEST, {"error": "%s: %s" % (PROGRAM, exc), "changed": False}
    else:
        code, result = Apply(request, engine_factory(request.docker.socket), **apply_options).run()
        if "error" in result:
            result["error"] = "%s on %s: %s" % (PROGRAM, request.node, result["error"])
    stdout.write(json.dumps(result, sort_keys=True) + "\n")
    stdout.flush()
    return code


def main() -> int:
    return run(sys.stdin.buffer, sys.stdout)
