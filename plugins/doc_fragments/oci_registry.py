# Copyright (c) nanoedge.core contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    """How a plugin reaches an OCI registry: the credentials and TLS options every registry reader shares."""

    DOCUMENTATION = r"""
options:
  username:
    description:
      - User for the registry. Used for Basic authentication or sent to the token service of a registry that
        answers with a C(Bearer) challenge. Without it, access is anonymous.
    type: str
    env:
      - name: NANOEDGE_REGISTRY_USERNAME
  password:
    description:
      - Password (or access token) for O(username). It is never shown in messages; mark tasks that pass it
        with C(no_log=true) so it does not appear in task arguments either.
    type: str
    secret: true
    env:
      - name: NANOEDGE_REGISTRY_PASSWORD
  validate_certs:
    description: Verify the TLS certificate of the registry and the token service.
    type: bool
    default: true
  ca_path:
    description: A PEM file (or a directory of hashed certificates) of CAs to trust instead of the system ones.
    type: path
"""
