#!/usr/bin/env bash
# ansible-test --venv bootstraps pip in each new virtual environment with a
# get-pip.py it downloads from a host outside PyPI. Where only PyPI is
# reachable, put a stand-in in its cache: it installs pip with ensurepip (in
# a subprocess: in-process ensurepip breaks pip's certificate settings) and
# then asks pip for the requested versions from PyPI.
set -euo pipefail
python=${1:-python}
pip_version=$("$python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
class _Any:
    version = "3.11"
print(get_venv_packages(_Any())["pip"])
PY
)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cat > "$cache.tmp" <<'PY'
"""Offline stand-in for get-pip.py (written by nanoedge.core tools/ansible_test_offline.sh)."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + args)
PY
mv "$cache.tmp" "$cache"
echo "ansible-test pip bootstrap stand-in: $cache"
