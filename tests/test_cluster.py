"""The pipeline on a real SLURM cluster (one node, started by workflow/cluster/local-slurm.sh):
every rule runs as a SLURM job, a train job scancelled mid-shard is resubmitted and keeps the archs it
finished, and the release has the bytes of a local run (every file but the measured ones).

Needs root and Debian's slurm-wlm and munge (.ci/run installs them); skips, saying why, without them.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.pipeline import RELEASE, ROOT, TINY, deterministic_files, run, workspace

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SCRIPT = ROOT / "workflow/cluster/local-slurm.sh"
PROFILE = "workflow/profiles/slurm-cpu"
# The tiny configuration: one shard of two archs, a job long enough to be killed after its first arch; its
# local build is the session's (conftest.py's tiny_builds), so this test builds only on the cluster.
assert TINY["plan"]["shards"] == 1 and TINY["plan"]["archs"] >= 2
PARTS = "results/train/tss/mnist5k/hp01/seed777/shard0.parts"


def why_no_cluster() -> str | None:
    if os.geteuid() != 0:
        return "starting SLURM's daemons needs root"
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if not shutil.which(b)]
    if missing:
        return f"no {', '.join(missing)}: apt-get install slurm-wlm munge (.ci/run does)"
    return None


@pytest.fixture(scope="module")
def cluster():
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    started = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    if started.returncode:  # installed, but this machine cannot run it (no cgroups, a broken munge key, ...)
        pytest.skip(f"SLURM is installed but local-slurm.sh could not start it: "
                    f"{(started.stderr or started.stdout).strip()[-400:]}")
    yield
    subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=600)


def slurm_jobs() -> list[tuple[str, str, str]]:
    """(job id, comment, state) of every job SLURM still knows (finished ones for MinJobAge)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%k|%T"], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]


def comparable(root: Path) -> dict[str, str]:
    """Every deterministic file under results/, without the logs (a resumed job says so in its log)."""
    return {k: v for k, v in deterministic_files(root).items() if not k.startswith("results/logs/")}


def test_pipeline_on_slurm_resumes_a_scancelled_job_and_matches_a_local_run(cluster, tiny_builds, tmp_path):
    root = workspace(tmp_path / "cluster", TINY)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    before = {job for job, _, _ in slurm_jobs()}
    pipeline = subprocess.Popen(["nasforge", "pipeline", "--profile", PROFILE], cwd=root, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, killed = time.monotonic() + 900, None
        while killed is None and time.monotonic() < deadline and pipeline.poll() is None:
            done = list((root / PARTS).glob("*.metrics.parquet"))
            train = [j for j, comment, state in slurm_jobs()
                     if j not in before and comment.startswith("rule_train") and state == "RUNNING"]
            if done and train:
                subprocess.run(["scancel", train[0]], check=True, timeout=600)
                killed = (train[0], len(done))
            time.sleep(0.5)
        output, _ = pipeline.communicate(timeout=1200)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
    assert killed, f"no train job was caught mid-shard:\n{output[-3000:]}"
    assert pipeline.returncode == 0, output[-5000:]
    assert f"release: {RELEASE}" in output

    jobs = [(j, c, s) for j, c, s in slurm_jobs() if j not in before]
    rules = {c.split("_wildcards")[0].removeprefix("rule_") for _, c, _ in jobs}
    assert {"data", "plan", "train", "aggregate", "validate", "search_algorithm", "analysis", "release"} <= rules
    trains = [(j, s) for j, c, s in jobs if c.startswith("rule_train")]
    assert (killed[0], "CANCELLED") in trains and any(s == "COMPLETED" for _, s in trains), trains
    log = (root / "results/logs/train/tss/mnist5k/hp01/seed777/shard0.log").read_text()
    kept = int(log.split("resuming; ")[1].split(f" of {TINY['plan']['archs']}")[0])
    assert kept >= killed[1] >= 1, log  # the resubmitted job kept every arch finished before the kill
    run(["nasforge", "release", "verify", RELEASE], root)

    local, _ = tiny_builds  # the same configuration built by `nasforge pipeline` on this machine
    cluster_files, local_files = comparable(root), comparable(local)
    assert cluster_files.keys() == local_files.keys()
    differing = sorted(k for k in cluster_files if cluster_files[k] != local_files[k])
    assert not differing, f"the SLURM run differs from the local run in {differing}"
