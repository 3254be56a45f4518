"""Fresh copies of the repository, built by the real pipeline: what test_pipeline.py and test_cluster.py share.

The tiny configuration is built once per test session by Snakemake (`nasforge pipeline`) and once by
`dvc repro` (conftest.py's `tiny_builds`); tests that change a build copy it or own it outright.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "results/release/nasforge-tss-v0.0.1"
TINY = {
    "release": {"name": "nasforge", "version": "0.0.1"},
    "space": "tss",
    "datasets": ["mnist5k"],
    "sources": {},
    # One shard of two archs: the SLURM test scancels its job between the two.
    "plan": {"archs": 2, "sample_seed": 0, "shards": 1, "include": [
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"]},
    "train": {"budgets": ["01"], "seeds": [777], "engine": "reference", "device": "cpu", "threads": 1,
              "latency_repeats": 1, "protocol": {"batch_size": 128}, "save_weights": True},
    "validate": {"chance_tolerance": 2.0, "isomorphic_tolerance": 5.0, "seed_spread_max": 20.0,
                 "seed_spread_median_max": 10.0},
    "search": {"algorithms": ["random", "rea", "reinforce", "bohb", "local", "naswot"], "runs": 2,
               "time_model": "flops", "gflops": 100.0, "time_budget": {"mnist5k": 5.0}, "naswot_samples": 2,
               "proxies": {"batch_size": 8}},
    # One weight-sharing search of two steps: its derived arch (not among the two above) is trained and scored.
    "oneshot": {"algorithms": ["random"], "seeds": [777], "epochs": {"tss": 1}, "steps_per_epoch": 2,
                "cells_per_stage": 1, "eval_batch_size": 50, "candidates": 2},
}


def workspace(path: Path, params: dict = TINY) -> Path:
    """A fresh copy of the repository (what a clone holds) with the tiny params, as its own git repo."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, path / rel)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=ci@nasforge", "-c", "user.name=ci"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "workspace"]):
        subprocess.run(git + cmd, cwd=path, check=True, timeout=120)
    return path


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    try:
        result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"{cmd} did not finish within {timeout} s:\n{(err.stdout or b'')[-3000:]!r}") from None
    if check and result.returncode:
        raise AssertionError(f"{cmd} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def deterministic_files(root: Path) -> dict[str, str]:
    """sha256 of every file under results/ except the measured ones (wall-clock seconds)."""
    out = {}
    for path in sorted((root / "results").rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and "measured" not in rel.split("/") and path.name != ".gitignore":
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def lock_without_measured(root: Path) -> dict:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for key in ("deps", "outs"):
            for entry in stage.get(key, []):
                if "measured" in entry["path"].split("/"):
                    entry.update(md5="(measured)", size=0)
    return lock
