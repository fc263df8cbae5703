"""Unpack selected collections from the PyPI ``ansible`` bundle wheel.

usage: unpack_collections.py WHEEL DEST namespace.name [namespace.name ...]

DEST is an ``ansible_collections`` folder. Only the named collections are
extracted (the whole bundle is ~550 MB installed; these are ~15 MB).
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def main(argv: list[str]) -> int:
    wheel, dest, *names = argv
    prefixes = ["ansible_collections/%s/" % name.replace(".", "/") for name in names]
    found = {prefix: 0 for prefix in prefixes}
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            for prefix in prefixes:
                if member.filename.startswith(prefix):
                    target = Path(dest) / member.filename[len("ansible_collections/"):]
                    if not str(target.resolve()).startswith(str(Path(dest).resolve())):
                        raise SystemExit("refusing to extract %s outside %s" % (member.filename, dest))
                    if member.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(archive.read(member))
                    found[prefix] += 1
    missing = [p for p, n in found.items() if n == 0]
    if missing:
        raise SystemExit("not in %s: %s" % (wheel, ", ".join(missing)))
    for prefix, count in found.items():
        print("unpacked %s (%d files)" % (prefix.rstrip("/"), count))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
