"""Copy the checkout to DEST (ansible_collections/nanoedge/core) for ansible-test.

Copies what git tracks plus new files git does not ignore, so a test run sees
exactly what a commit would contain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def main(dest: str) -> int:
    target = Path(dest)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout.decode()
    count = 0
    for name in filter(None, listing.split("\0")):
        source = Path(name)
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet committed
        out = target / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out, follow_symlinks=False)
        count += 1
    # ansible-test lists content with git from the nearest repository root; the
    # checkout's own .gitignore hides .build/, so make the copy a repository.
    subprocess.run(["git", "init", "-q", str(target)], check=True)
    print("layout: %d files in %s" % (count, target))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
