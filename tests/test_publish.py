"""Publishing a release to real DVC remotes (a local folder; OpenSSH on localhost), fetching it into a fresh
clone without re-running anything, refusing a tampered remote, and diffing two releases."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from helpers import phases, sshd
from nasforge.cli import app
from nasforge.publish import PublishError, fetch, publish, read_record
from nasforge.publish.diff import diff_releases
from nasforge.release import verify
from nasforge.tables import read_metadata, write_table
from test_hostile import rehash

runner = CliRunner()
GIT = ["git", "-c", "user.email=ci@nasforge", "-c", "user.name=ci"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return phases.fabricated_release(tmp_path_factory.mktemp("publish") / "results")


def dvc(args: list[str], cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def project(root: Path, release: Path, remote_url: str, keyfile: Path | None = None) -> Path:
    """A git + DVC project whose one stage writes the release (standing for the pipeline), built and committed."""
    root.mkdir()
    name = release.name
    shutil.copytree(release, root / "built" / name)
    copy = f"import shutil; shutil.copytree('built/{name}', 'releases/{name}')"
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"release": {
        "cmd": f'"{sys.executable}" -c "{copy}"', "deps": ["built"], "outs": [f"releases/{name}"]}}}))
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True, timeout=600)
    dvc(["init", "-q"], root)
    dvc(["remote", "add", "store", remote_url], root)
    if keyfile:
        dvc(["remote", "modify", "store", "keyfile", str(keyfile)], root)
    dvc(["repro", "-q"], root)
    for cmd in (["add", "-A"], ["commit", "-qm", "release built"]):
        subprocess.run(GIT + cmd, cwd=root, check=True, timeout=600)
    return root


def clone(source: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True, timeout=600)
    shutil.rmtree(dest / "built")  # the stage's input is gone: a fetch that re-ran anything would fail
    return dest


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def remote_kinds():
    yield "local"
    yield pytest.param("ssh", marks=pytest.mark.skipif(sshd.unavailable() is not None, reason=str(sshd.unavailable())))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(remote_kinds()))
def test_publish_then_fetch_into_a_fresh_clone(release, tmp_path, monkeypatch, kind):
    store = tmp_path / "remote"
    if kind == "ssh":
        server = sshd.Server(tmp_path).__enter__()
        monkeypatch.setenv("HOME", str(server.home))  # its known_hosts trusts exactly this server's key
        url, key = f"ssh://root@127.0.0.1:{server.port}{store}", server.client_key
    else:
        url, key = str(store), None
    try:
        root = project(tmp_path / "project", release, url, key)
        result = runner.invoke(app, ["release", "publish", str(root / "releases" / release.name), "--remote", "store"])
        assert result.exit_code == 0, result.output
        record = read_record(release.name, root)
        assert record["remote"] == {"name": "store", "url": url}
        assert record["dvc_lock"]["sha256"] == hashlib.sha256((root / "dvc.lock").read_bytes()).hexdigest()
        assert record["outs"] == [f"releases/{release.name}"] and record["release"] == f"releases/{release.name}"
        objects = [p for p in store.rglob("*") if p.is_file()]
        assert len(objects) >= len(files(release))  # every file of the release, plus DVC's directory listing

        fresh = clone(root, tmp_path / "clone")
        monkeypatch.chdir(fresh)
        result = runner.invoke(app, ["release", "fetch", release.name])
        assert result.exit_code == 0, result.output
        assert files(fresh / "releases" / release.name) == files(release)
        assert verify(fresh / "releases" / release.name) == []
    finally:
        if kind == "ssh":
            server.__exit__(None, None, None)


@pytest.mark.slow
def test_a_tampered_remote_object_is_refused_on_fetch(release, tmp_path):
    store = tmp_path / "remote"
    root = project(tmp_path / "project", release, str(store))
    publish(root / "releases" / release.name, "store")
    victim = next(p for p in sorted(store.rglob("*")) if p.is_file() and not p.name.endswith(".dir"))
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"\n")
    fresh = clone(root, tmp_path / "clone")
    with pytest.raises(PublishError, match="altered or corrupt after publication"):
        fetch(release.name, fresh)


@pytest.mark.slow
def test_publish_refuses_what_it_cannot_stand_behind(release, tmp_path):
    root = project(tmp_path / "project", release, str(tmp_path / "remote"))
    target = root / "releases" / release.name
    with pytest.raises(PublishError, match="no DVC remote 'nowhere'.*dvc remote add"):
        publish(target, "nowhere")
    with pytest.raises(PublishError, match="no dvc.lock records it"):
        publish(release, "store")  # a release folder outside any DVC project
    (target / "DATACARD.md").chmod(0o644)
    original = (target / "DATACARD.md").read_bytes()
    (target / "DATACARD.md").write_text("edited")
    with pytest.raises(PublishError, match="does not verify"):
        publish(target, "store")
    (target / "DATACARD.md").write_bytes(original)
    (root / "dvc.lock").write_text((root / "dvc.lock").read_text() + "\n")
    with pytest.raises(PublishError, match="uncommitted changes"):
        publish(target, "store")
    subprocess.run(["git", "checkout", "dvc.lock"], cwd=root, check=True, timeout=600)
    assert not subprocess.run(["git", "tag"], cwd=root, capture_output=True, text=True, timeout=600).stdout  # nothing tagged yet
    publish(target, "store")
    with pytest.raises(PublishError, match="is immutable"):
        publish(target, "store")
    fresh = clone(root, tmp_path / "clone")
    (fresh / "note").write_text("x")
    subprocess.run([*GIT, "add", "note"], cwd=fresh, check=True, timeout=600)
    subprocess.run([*GIT, "commit", "-qm", "later"], cwd=fresh, check=True, timeout=600)
    with pytest.raises(PublishError, match=f"git checkout {release.name}"):
        fetch(release.name, fresh)
    with pytest.raises(PublishError, match="no tag 'other-v1'"):
        fetch("other-v1", fresh)


@pytest.mark.slow
def test_nothing_is_tagged_until_the_remote_holds_every_object_and_edited_tags_stay_in_the_clone(
        release, tmp_path, monkeypatch):
    """A push that left the remote short (interrupted, or trusting a stale record of the remote) once got tagged;
    a tag record naming ``../outside`` once had fetch verify a folder outside the clone."""
    import nasforge.publish as publishing

    store = tmp_path / "remote"
    root = project(tmp_path / "project", release, str(store))
    target = root / "releases" / release.name
    real = publishing._dvc

    def push_then_lose_objects(args, cwd, what):
        out = real(args, cwd, what)
        if args[0] == "push":
            # half the files, the .dir listing kept: what DVC's own status and push take as a complete folder
            for victim in sorted(p for p in store.rglob("*") if p.is_file() and not p.name.endswith(".dir"))[::2]:
                victim.unlink()
        return out

    monkeypatch.setattr(publishing, "_dvc", push_then_lose_objects)
    monkeypatch.setattr(publishing, "_push_objects", lambda *args: None)  # a remote that takes nothing more
    with pytest.raises(PublishError, match="after the push it still lacks .* nothing was tagged"):
        publish(target, "store")
    assert not subprocess.run(["git", "tag"], cwd=root, capture_output=True, text=True, timeout=600).stdout
    monkeypatch.undo()
    monkeypatch.setattr(publishing, "_dvc", push_then_lose_objects)
    # The lost objects are found one by one and re-sent (DVC's own push trusts the .dir listing it finds
    # there and would skip them), then the tag is written.
    publish(target, "store")
    monkeypatch.undo()
    fresh = clone(root, tmp_path / "clone")
    fetch(release.name, fresh)
    assert files(fresh / "releases" / release.name) == files(release)

    record = read_record(release.name, fresh)
    (tmp_path / "outside").mkdir()
    shutil.copytree(release, tmp_path / "outside" / release.name)  # a valid release the edited tag points at
    for field, value in (("release", f"../outside/{release.name}"), ("release", "/etc"),
                         ("dvc_lock", {"path": "../project/dvc.lock", "sha256": record["dvc_lock"]["sha256"]}),
                         ("outs", ["releases/../../outside"]), ("release", 7)):
        edited = {**record, field: value}
        message = f"{publishing.RECORD_HEADER} {release.name}\n\n{json.dumps(edited)}\n"
        subprocess.run([*GIT, "tag", "-f", "-a", release.name, "-m", message], cwd=fresh, check=True,
                       capture_output=True, timeout=600)
        with pytest.raises(PublishError, match=f"record's {field}.* (leaves the clone|is not a path)"):
            fetch(release.name, fresh)


def _changed_copy(release: Path, dest: Path, arch: int, delta: float) -> Path:
    """``release`` with one arch's test accuracy moved by ``delta`` (every seed and the mean) and hp 12's lr changed."""
    shutil.copytree(release, dest)
    path = dest / "tables/archs.parquet"
    metadata = read_metadata(path)
    archs = pl.read_parquet(path)
    hit = pl.col("arch_index") == arch
    archs = archs.with_columns(
        pl.when(hit).then(pl.col("test_acc_mean") + delta).otherwise(pl.col("test_acc_mean")).alias("test_acc_mean"),
        pl.when(hit).then(pl.col("test_acc_seeds").list.eval(pl.element() + delta)).otherwise(
            pl.col("test_acc_seeds")).alias("test_acc_seeds"))
    write_table(archs, path, ["dataset", "hp", "arch_index"], metadata)
    (dest / "tables/archs.parquet.sha256").unlink(missing_ok=True)
    rehash(dest, "tables/archs.parquet")
    protocols = json.loads((dest / "tables/protocols.json").read_text())
    protocols["12"]["protocol"]["lr"] = 0.2
    (dest / "tables/protocols.json").write_text(json.dumps(protocols, indent=2, sort_keys=True) + "\n")
    rehash(dest, "tables/protocols.json")
    return dest


def test_release_diff_lists_changed_archs_metrics_files_and_protocol(release, tmp_path):
    archs = pl.read_parquet(release / "tables/archs.parquet")
    arch = int(archs.filter(pl.col("test_acc_mean") < 90)["arch_index"][0])
    changed = _changed_copy(release, tmp_path / "b", arch, 1.5)
    d = diff_releases(release, changed)
    assert d["files"] == {"added": [], "removed": [], "changed": ["tables/archs.parquet", "tables/protocols.json"]}
    assert [(r["arch_index"], r["dataset"], r["hp"]) for r in d["archs"]["changed"]] == [(arch, "mnist5k", "12")]
    (row,) = d["archs"]["changed"]
    assert row["changed"]["test_acc_mean"]["to"] - row["changed"]["test_acc_mean"]["from"] == pytest.approx(1.5)
    assert d["metrics"] == {"test_acc_mean": {"archs": 1, "max_abs_delta": pytest.approx(1.5),
                                              "mean_delta": pytest.approx(1.5)}}
    assert d["protocol"] == {"12.protocol.lr": {"from": 0.1, "to": 0.2}}
    assert d["archs"]["compared"] == archs.height and not d["archs"]["added"] and not d["archs"]["removed"]
    same = diff_releases(release, release)
    assert not any(same["files"].values()) and not same["archs"]["changed"] and not same["protocol"]
    result = runner.invoke(app, ["release", "diff", str(release), str(changed)])
    assert result.exit_code == 0, result.output
    assert f"arch {arch}: test_acc_mean" in result.output and "protocol 12.protocol.lr: 0.1 -> 0.2" in result.output
    result = runner.invoke(app, ["release", "diff", str(release), str(changed), "--json"])
    assert json.loads(result.output)["files"]["changed"] == ["tables/archs.parquet", "tables/protocols.json"]


def test_release_diff_refuses_a_tampered_release(release, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(release, broken)
    (broken / "tables/archs.parquet").chmod(0o644)
    (broken / "tables/archs.parquet").write_bytes(b"not parquet")
    result = runner.invoke(app, ["release", "diff", str(release), str(broken)])
    assert result.exit_code != 0 and "archs.parquet" in result.output
