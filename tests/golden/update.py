"""The golden hashes of the embedded build: ``tests/golden/embedded.sha256``.

Every deterministic file under ``results/`` after ``nasforge pipeline`` with
params.yaml as committed, in ``sha256sum`` format, paths relative to
``results/``. Left out: ``measured/`` (wall-clock seconds), ``logs/`` and the
release's ``manifest.json``, which names the git commit the code was built
from (so it changes with every commit; every file it lists is checked here).

    nasforge pipeline && python tests/golden/update.py results   # after a change that moves numbers
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

GOLDEN = Path(__file__).with_name("embedded.sha256")


def excluded(rel: str) -> bool:
    parts = rel.split("/")
    return ("measured" in parts or parts[0] == "logs" or parts[-1] == ".gitignore"
            or (parts[0] == "release" and parts[-1] == "manifest.json" and len(parts) == 3))


def digests(results: Path) -> dict[str, str]:
    """sha256 of every deterministic file under ``results``, by path relative to it."""
    out = {}
    for path in sorted(results.rglob("*")):
        rel = path.relative_to(results).as_posix()
        if path.is_file() and not excluded(rel):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def render(hashes: dict[str, str]) -> str:
    return "".join(f"{digest}  {rel}\n" for rel, digest in sorted(hashes.items()))


def read(golden: Path = GOLDEN) -> dict[str, str]:
    hashes = {}
    for line in golden.read_text().splitlines():
        digest, rel = line.split("  ", 1)
        hashes[rel] = digest
    return hashes


def main() -> None:
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
    if not (results / "release").is_dir():
        sys.exit(f"{results}/release: no release here; run `nasforge pipeline` first")
    GOLDEN.write_text(render(digests(results)))
    print(f"wrote {GOLDEN} ({len(read())} files)")


if __name__ == "__main__":
    main()
