"""Publish a release to a DVC remote under a git tag, and fetch it back anywhere, verified.

A release is a DVC output: ``dvc.lock`` (committed to git) holds the hash of
every file the pipeline wrote, and a DVC remote holds the bytes. Publishing
is therefore: check the release verifies and is exactly what the committed
``dvc.lock`` says, ``dvc push`` every output of that lock file (the release
and the intermediates it came from), and tag the commit with the release's
name. The tag is annotated with the publication record: the remote, the
sha256 of ``dvc.lock`` and of the release's ``manifest.json``, the outputs.
The record lives in the tag, not in the release folder, because writing it
into the folder would change the very bytes ``dvc.lock`` hashes.

Fetching, in a fresh clone at the tag: ``dvc pull`` the release's outputs
(nothing is re-run), then check ``manifest.json`` against the sha256 in the
tag and every file against the manifest (``release verify``). A remote
object altered after publication fails here, naming the file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

import nasforge
from nasforge.errors import InputError, MissingInputError
from nasforge.release.manifest import MANIFEST, verify

RECORD_HEADER = "nasforge release"


class PublishError(InputError):
    """The release cannot be published or fetched as asked; the message says what to do."""


@dataclass(frozen=True)
class Located:
    """Where a release sits in its DVC project: the project, its lock file and the outputs inside it."""

    root: Path  # the DVC project (and git work tree) root
    lock: Path  # the dvc.lock whose stages wrote the release
    stage: str
    outs: list[str]  # the release's DVC outputs, relative to root
    release: str  # the release folder, relative to root


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()
                 if line.strip() and not line.strip().startswith("<http")]
        raise PublishError(f"{what} failed: {' '.join(lines)[-400:] or 'no output'}")
    return result.stdout


def _dvc(args: list[str], cwd: Path, what: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd, what)


def _git(args: list[str], cwd: Path, what: str) -> str:
    return _run(["git", *args], cwd, what)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(release: Path | str) -> Located:
    """Find the dvc.lock that records ``release`` as (part of) a stage's outputs."""
    release = Path(release).resolve()
    if not release.is_dir():
        raise MissingInputError(f"{release}: no such release folder")
    for folder in release.parents:
        lock = folder / "dvc.lock"
        if lock.is_file():
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
            for stage, entry in sorted(stages.items()):
                outs = [o["path"] for o in entry.get("outs", [])]
                mine = [o for o in outs if (folder / o).resolve() == release or release in (folder / o).resolve().parents]
                if mine:
                    root = next((p for p in [folder, *folder.parents] if (p / ".dvc").is_dir()), None)
                    if root is None:
                        raise PublishError(f"{lock}: not inside a DVC project (no .dvc folder above it)")
                    return Located(root, lock, stage, sorted((folder / o).relative_to(root).as_posix() for o in mine),
                                   release.relative_to(root).as_posix())
        if (folder / ".dvc").is_dir():
            break
    raise PublishError(f"{release}: no dvc.lock records it as an output, so DVC cannot publish it; build it with "
                       "`dvc repro` (or the import stage, `dvc repro imports/dvc.yaml`) and commit dvc.lock")


def _stage_target(located: Located) -> str:
    dvcfile = located.lock.with_name("dvc.yaml").relative_to(located.root).as_posix()
    return f"{dvcfile}:{located.stage}"


def _check_published_state(located: Located, release: Path) -> None:
    problems = verify(release)
    if problems:
        raise PublishError(f"{release}: does not verify ({problems[0]}); rebuild it before publishing")
    status = json.loads(_dvc(["status", "--json", _stage_target(located)], located.root, "dvc status") or "{}")
    if status:
        raise PublishError(f"{release}: differs from {located.lock.name} (dvc status: {json.dumps(status)[:200]}); "
                           "run `dvc repro` and commit dvc.lock, so the tag names what you publish")
    lock_rel = located.lock.relative_to(located.root).as_posix()
    dirty = _git(["status", "--porcelain", "--", lock_rel, str(Path(lock_rel).with_name("dvc.yaml"))],
                 located.root, "git status")
    if dirty.strip():
        raise PublishError(f"{lock_rel}: has uncommitted changes; commit dvc.yaml and dvc.lock first: the tag must "
                           "name the commit that holds the release's hashes")


def _remote_url(root: Path, remote: str) -> str:
    from dvc.repo import Repo  # DVC's own reading of .dvc/config and config.local (its CLI wraps long URLs)

    with Repo(str(root)) as repo:
        remotes = {name: dict(conf) for name, conf in repo.config["remote"].items()}
    if remote not in remotes:
        raise PublishError(f"no DVC remote {remote!r} in {root} (remotes: {sorted(remotes) or 'none'}); add one with "
                           f"`dvc remote add {remote} URL` and commit .dvc/config")
    return str(remotes[remote]["url"])


def _lock_objects(root: Path, lock: Path) -> set[str]:
    """Every object the lock's outputs consist of: each output's md5 and, for a folder, each file's in its
    ``.dir`` listing (read from the local cache, which the push just read from)."""
    from dvc.repo import Repo

    oids = set()
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    with Repo(str(root)) as repo:
        cache = repo.cache.local
        for entry in stages.values():
            for out in entry.get("outs", []):
                oid = out.get("md5")
                if not oid:
                    continue
                oids.add(oid)
                if oid.endswith(".dir"):
                    listing = json.loads(Path(cache.oid_to_path(oid)).read_text())
                    oids.update(item["md5"] for item in listing)
    return oids


def _missing_on_remote(root: Path, remote: str, oids: set[str]) -> list[str]:
    """The objects the remote lacks, asked object by object: DVC's own status and push take a folder's
    ``.dir`` listing on the remote as proof of all its files, which an interrupted push breaks."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        odb = repo.cloud.get_remote_odb(remote)
        return sorted(oid for oid in oids if not odb.exists(oid))


def _push_objects(root: Path, remote: str, oids: list[str]) -> None:
    """Send these objects to the remote, bypassing DVC's index of what the remote holds (``dvc push``
    consults it, so after an interrupted push it skips the very objects that are missing)."""
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    with Repo(str(root)) as repo:
        cache = repo.cache.local
        repo.cloud.transfer(cache, repo.cloud.get_remote_odb(remote, "push"), [HashInfo("md5", oid) for oid in oids],
                            cache_odb=cache)


def _complete_remote(root: Path, remote: str, lock: Path) -> None:
    """After ``dvc push``: every object the lock names is on the remote, re-sent where it is not, or nothing
    is tagged."""
    oids = _lock_objects(root, lock)
    missing = _missing_on_remote(root, remote, oids)
    if missing:
        _push_objects(root, remote, missing)
        missing = _missing_on_remote(root, remote, oids)
    if missing:
        raise PublishError(f"{remote}: after the push it still lacks {len(missing)} of this release's {len(oids)} "
                           f"objects (first: {missing[0]}); nothing was tagged. Rerun `nasforge release publish` "
                           "once the remote is reachable")


def publish(release: Path | str, remote: str, git_remote: str | None = None) -> dict:
    """Push ``release`` and its lock file's intermediates to the DVC ``remote`` and tag the commit; return the record."""
    release = Path(release).resolve()
    located = locate(release)
    root = located.root
    manifest = json.loads((release / MANIFEST).read_text())
    name = manifest["name"]
    if _git(["tag", "--list", name], root, "git tag").strip():
        raise PublishError(f"tag {name!r} exists: a published release is immutable; bump release.version "
                           "(or import --version) and rebuild")
    _check_published_state(located, release)
    url = _remote_url(root, remote)
    dvcfile = located.lock.with_name("dvc.yaml").relative_to(root).as_posix()
    _dvc(["push", "-r", remote, dvcfile], root, f"dvc push to {remote}")
    _complete_remote(root, remote, located.lock)
    record = {
        "name": name, "version": manifest.get("version"), "space": manifest.get("space"),
        "commit": _git(["rev-parse", "HEAD"], root, "git rev-parse").strip(),
        "remote": {"name": remote, "url": url},
        "dvc_lock": {"path": located.lock.relative_to(root).as_posix(), "sha256": _sha256(located.lock)},
        "release": located.release, "outs": located.outs, "stage": located.stage,
        "manifest_sha256": _sha256(release / MANIFEST), "nasforge": nasforge.__version__,
    }
    message = f"{RECORD_HEADER} {name}\n\n{json.dumps(record, indent=2, sort_keys=True)}\n"
    _git(["-c", "user.name=nasforge", "-c", "user.email=nasforge@localhost", "tag", "-a", name, "-m", message],
         root, "git tag")
    if git_remote:
        _git(["push", git_remote, f"refs/tags/{name}"], root, f"git push of the tag to {git_remote}")
    return record


def read_record(name: str, root: Path | str = ".") -> dict:
    """The publication record in tag ``name``'s annotation."""
    root = Path(root)
    if not _git(["tag", "--list", name], root, "git tag").strip():
        raise PublishError(f"no tag {name!r} in {root.resolve()}: fetch tags (`git fetch --tags`) or list the "
                           "published releases with `git tag --list`")
    message = _git(["tag", "--list", "--format=%(contents)", name], root, "git tag")
    header, _, body = message.partition("\n\n")
    if not header.startswith(RECORD_HEADER):
        raise PublishError(f"tag {name!r} was not made by `nasforge release publish` (its message holds no record)")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        raise PublishError(f"tag {name!r}: its record is not valid JSON; the tag was edited") from None


def _inside(root: Path, rel: object, name: str, field: str) -> str:
    """A path of a tag record, relative and inside the clone; anything else means the tag was edited."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise PublishError(f"tag {name!r}: its record's {field} {rel!r} is not a path; the tag was edited")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")) or \
            not (root / rel).resolve().is_relative_to(root):
        raise PublishError(f"tag {name!r}: its record's {field} {rel!r} leaves the clone {root}; the tag was edited, "
                           "do not use it")
    return rel


def _checked_record(record: object, name: str, root: Path) -> dict:
    """The record's fields that name files or programs, typed and confined to the clone."""
    if not isinstance(record, dict) or not isinstance(record.get("dvc_lock"), dict) or \
            not isinstance(record.get("outs"), list) or not isinstance(record.get("remote"), dict):
        raise PublishError(f"tag {name!r}: its record lacks dvc_lock, outs or remote; the tag was edited")
    _inside(root, record["dvc_lock"].get("path"), name, "dvc_lock.path")
    _inside(root, record.get("release"), name, "release")
    for out in record["outs"]:
        _inside(root, out, name, "outs")
    for field, value in (("dvc_lock.sha256", record["dvc_lock"].get("sha256")),
                         ("manifest_sha256", record.get("manifest_sha256")), ("remote.name", record["remote"].get("name"))):
        if not isinstance(value, str) or not value or value.startswith("-"):
            raise PublishError(f"tag {name!r}: its record's {field} {value!r} is not valid; the tag was edited")
    return record


def fetch(name: str, root: Path | str = ".", remote: str | None = None, intermediates: bool = False) -> dict:
    """Pull release ``name`` from its DVC remote into the clone at ``root`` (checked out at the tag) and verify it."""
    root = Path(root).resolve()
    record = _checked_record(read_record(name, root), name, root)
    head = _git(["rev-parse", "HEAD"], root, "git rev-parse").strip()
    tagged = _git(["rev-list", "-n", "1", name], root, "git rev-list").strip()
    if head != tagged:
        raise PublishError(f"{root}: HEAD is {head[:12]}, the release {name} is commit {tagged[:12]}; "
                           f"`git checkout {name}` first")
    lock = root / record["dvc_lock"]["path"]
    if not lock.is_file() or _sha256(lock) != record["dvc_lock"]["sha256"]:
        raise PublishError(f"{lock}: differs from the dvc.lock the tag {name} records; restore it "
                           f"(`git checkout {name} -- {record['dvc_lock']['path']}`)")
    dvcfile = Path(record["dvc_lock"]["path"]).with_name("dvc.yaml").as_posix()
    targets = [dvcfile] if intermediates else record["outs"]
    remote = remote or record["remote"]["name"]
    # Verification on (in this clone's local config): DVC re-hashes each object it downloads and refuses a mismatch.
    _dvc(["remote", "modify", "--local", remote, "verify", "true"], root, "dvc remote modify")
    try:
        _dvc(["pull", "-r", remote, *targets], root, f"dvc pull of {name}")
    except PublishError as err:
        raise PublishError(f"{err}; DVC verifies every object it pulls, so either the remote is unreachable or an "
                           "object there no longer matches the hash dvc.lock records (altered or corrupt after "
                           "publication): do not use it") from None
    release = root / record["release"]
    manifest = release / MANIFEST
    if not manifest.is_file() or _sha256(manifest) != record["manifest_sha256"]:
        raise PublishError(f"{manifest}: its sha256 differs from the one tag {name} records: the remote's copy "
                           "was altered after publication; do not use it")
    problems = verify(release)
    if problems:
        raise PublishError(f"{release}: fetched, but {problems[0]}"
                           + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                           + ": the remote's copy was altered after publication; do not use it")
    return record


__all__ = ["PublishError", "fetch", "locate", "publish", "read_record"]
