import json
import shlex
from pathlib import Path

from nasforge.config import check_params
from nasforge.paths import AGGREGATE_TABLES, FIGURES, MEASURED_TABLES, ONESHOT_FILES, PROTOCOLS, SEARCH_FILES, Results
from nasforge.release import release_name
from nasforge.weights import WEIGHTS_DIR

# Checked before any job starts (a wrong key or value stops here, naming it and what is allowed),
# and every default the schema states is filled into config: rules below read keys directly.
check_params(config, Path(workflow.basedir) / "workflow/schemas/params.schema.yaml", "the configuration")

R = Results("results")  # every path below comes from nasforge.paths, as the commands' own paths do
SPACE = config["space"]
TRAIN = config["train"]
RAW_SOURCE = {"cifar10-valid": "cifar10", "cifar10": "cifar10", "cifar100": "cifar100",
              "ImageNet16-120": "imagenet16-120", "mnist5k": None}


def section(*keys):
    """The configuration keys a step depends on, as JSON; Snakemake reruns the step when they change."""
    return json.dumps({k: config[k] for k in keys}, sort_keys=True)


def source_option(wildcards):
    """``--source PATH`` as two arguments: the shell command quotes each (``{params.source:q}``),
    so a path with spaces or shell syntax reaches nasforge as one literal argument."""
    raw = RAW_SOURCE[wildcards.dataset]
    if raw is None:
        return []
    path = config["sources"].get(raw)
    if not path:
        raise ValueError(f"dataset {wildcards.dataset} needs sources.{raw} in params.yaml: the local official archive")
    return ["--source", path]


def shard_tables(kind=""):
    """Every shard file of the configured space, datasets, budgets and seeds."""
    return [R.shard(SPACE, d, h, s, k, kind) for d in config["datasets"] for h in TRAIN["budgets"]
            for s in TRAIN["seeds"] for k in range(config["plan"]["shards"])]


def shard_weights():
    """Every train job's weights folder where train.save_weights asks for them, else none."""
    if not TRAIN["save_weights"]:
        return []
    return [R.shard_weights(SPACE, d, h, s, k) for d in config["datasets"] for h in TRAIN["budgets"]
            for s in TRAIN["seeds"] for k in range(config["plan"]["shards"])]


def release_manifest():
    return f"{R.release(release_name(config))}/manifest.json"


def oneshot_runs(measured=False):
    """Every configured weight-sharing search job's table (or its measured seconds)."""
    o = config["oneshot"]
    return [R.oneshot_run(m, d, s, measured) for m in o["algorithms"] for d in config["datasets"] for s in o["seeds"]]


def oneshot_files():
    """The oneshot phase's outputs. Written (as empty tables) even when no search is configured: DVC's
    stage declares them, so they must exist; the release carries them only when searches ran."""
    return [R.oneshot_file(f) for f in ONESHOT_FILES]
