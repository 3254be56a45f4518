"""The ``nasforge`` command line: every pipeline step is one subcommand, so each
Snakemake rule stays a thin call and each step is testable on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from nasforge.errors import InputError, NasforgeError
from nasforge.paths import RESULTS, Results, results_at
from nasforge.spaces import SPACE_NAMES, get_space

PIPELINE = "Pipeline steps (each one Snakemake rule's command)"
TOOLS = "Tools"


class _Commands(TyperGroup):
    """The one place errors become output: a NasforgeError (bad input, a missing or altered file, a
    failed audit) or an OSError (a full disk, a read-only folder) is one line and its exit code;
    anything else is a bug in nasforge and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NasforgeError as err:
            typer.secho(f"{err.label}: {err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(err.exit_code) from None
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            typer.secho(f"error: {where}{err.strerror or err}", err=True, fg=typer.colors.RED)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="nasforge",
    help="Build, rebuild, audit and publish NAS benchmarks (NATS-Bench's TSS and SSS).",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    raise InputError(message)


def _space_name(value: str) -> str:
    if value.lower() not in SPACE_NAMES:
        raise typer.BadParameter(f"expected one of {list(SPACE_NAMES)}, got {value!r}")
    return value.lower()


@app.command("space", rich_help_panel=TOOLS)
def space_cmd(
    space: Annotated[str, typer.Argument(help="Search space: tss or sss.", callback=_space_name)],
    arch: Annotated[str, typer.Argument(help="An index (e.g. 0) or an arch string of the space.")],
    num_classes: Annotated[int, typer.Option("--num-classes", min=1, help="Classifier outputs: 10, 100 or 120.")] = 10,
    input_size: Annotated[int, typer.Option("--input-size", min=4, help="Image side in pixels: 32 (CIFAR) or 16 (ImageNet16).")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Look up one architecture: its index, string, canonical form, params and FLOPs."""
    from nasforge.models import cost

    sp = get_space(space)
    index = sp.index(arch) if not arch.strip().lstrip("-").isdigit() else int(arch)
    arch_str = sp.arch(index)
    info = {"space": space, "index": index, "arch": arch_str, "canonical": sp.canonical(index),
            "canonical_index": sp.canonical_index(index)}
    info.update({f"{k}_M": round(v, 6) for k, v in cost(space, arch_str, num_classes, input_size).items()})
    info.update(num_classes=num_classes, input_size=input_size)
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    width = max(map(len, info))
    for key, value in info.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command("spaces", rich_help_panel=TOOLS)
def spaces_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Summarise both search spaces: sizes, unique topologies, cost ranges on CIFAR-10."""
    from nasforge.models import cost

    summary = {}
    for name in SPACE_NAMES:
        sp = get_space(name)
        costs = [cost(name, a) for a in sp]
        entry = {
            "archs": len(sp),
            "params_M": [round(min(c["params"] for c in costs), 4), round(max(c["params"] for c in costs), 4)],
            "flops_M": [round(min(c["flops"] for c in costs), 2), round(max(c["flops"] for c in costs), 2)],
            "first": sp.arch(0),
            "last": sp.arch(len(sp) - 1),
            "unique_topologies": sp.unique_count(),
        }
        summary[name] = entry
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    for name, entry in summary.items():
        typer.echo(f"{name.upper()}")
        for key, value in entry.items():
            typer.echo(f"  {key:<18} {value}")


@app.command("prepare", rich_help_panel=PIPELINE)
def prepare_cmd(
    dataset: Annotated[str, typer.Argument(help="cifar10-valid, cifar10, cifar100, ImageNet16-120 or mnist5k.")],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Official archive or folder (cifar-10-python.tar.gz, cifar-100-python.tar.gz, "
                     "the ImageNet16 pickles' folder). Not needed for mnist5k."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Parent folder of prepared datasets.")] = Path("results/data"),
) -> None:
    """Data phase: verify a dataset's source and write it, with NATS-Bench's splits, to OUT/DATASET."""
    from nasforge.data import prepare, read_manifest

    folder = prepare(dataset, out, source)
    manifest = read_manifest(folder)
    sizes = ", ".join(f"{k} {v['count']}" for k, v in manifest["splits"].items())
    typer.echo(f"prepared {dataset} in {folder}: {sizes}")


def _index_list(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated arch indices such as 0,9,123; got {value!r}") from None


@app.command("train-shard", rich_help_panel=PIPELINE)
def train_shard_cmd(
    space: Annotated[str, typer.Option("--space", help="tss or sss.", callback=_space_name)],
    dataset: Annotated[str, typer.Option("--dataset", help="A prepared dataset, e.g. cifar10-valid or mnist5k.")],
    hp: Annotated[str, typer.Option("--hp", help="Budget in epochs, NATS-Bench style: 01, 12, 90, 200.")],
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Training seed (NATS-Bench: 777, 888, 999).")],
    shard: Annotated[int, typer.Option("--shard", min=0, help="This job's shard, 0-based.")] = 0,
    of: Annotated[int, typer.Option("--of", min=1, help="Number of shards.")] = 1,
    plan: Annotated[Path | None, typer.Option("--plan", help="Plan table assigning archs to shards.")] = None,
    archs: Annotated[str | None, typer.Option("--archs", help="Explicit comma-separated arch indices (overrides --plan).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The prepared dataset: its folder or manifest.json "
                    "[default: RESULTS/data/DATASET].")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The shard's metrics table [default: "
                   "RESULTS/train/SPACE/DATASET/hpHP/seedSEED/shardK.parquet].")] = None,
    timing_out: Annotated[Path | None, typer.Option("--timing-out", help="Its measured seconds [default: under "
                          "RESULTS/measured/train/].")] = None,
    cost_out: Annotated[Path | None, typer.Option("--cost-out", help="Its params, FLOPs and latency [default: "
                        "under RESULTS/measured/train/].")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads (fixed: results depend on it).")] = 1,
    protocol_json: Annotated[str | None, typer.Option("--protocol-json", help="Overrides of NATS-Bench's protocol "
                             "as JSON, e.g. '{\"batch_size\": 128}' (params.yaml's train.protocol).")] = None,
    latency_repeats: Annotated[int, typer.Option("--latency-repeats", min=0, help="Timed forward passes per latency "
                               "figure; 0: not measured (the pipeline measures it in the first seed's jobs only).")] = 3,
    engine: Annotated[str, typer.Option("--engine", help="reference (one arch at a time) or fused (the plan's "
                      "groups, or packed here, trained as one computation).")] = "reference",
    results: Annotated[Path, typer.Option("--results", help="Root the default paths of --data, --out, --timing-out "
                       "and --cost-out lie under (laid out as nasforge.paths says).")] = Path("results"),
    weights_out: Annotated[Path | None, typer.Option("--weights-out", help="Also keep each arch's trained weights "
                           "here, {arch_index}.safetensors (params.yaml's train.save_weights; engine reference).")] = None,
) -> None:
    """Train phase: train one shard of architectures and write its tables (resumes a killed job)."""
    from nasforge.data.registry import DATASETS
    from nasforge.protocol import Protocol
    from nasforge.train.shard import ShardJob, run_shard

    if dataset not in DATASETS:
        _fail(f"--dataset {dataset!r} is not a dataset nasforge knows; expected one of {sorted(DATASETS)}")
    if not DEVICE.match(device):
        _fail(f"--device {device!r} is not allowed; expected auto, cpu, cuda or cuda:N")
    protocol = Protocol.nats(hp).with_overrides(_json_object(protocol_json, "--protocol-json"))
    given = {"data": data, "out": out, "timing_out": timing_out, "cost_out": cost_out}
    job = ShardJob.under(Results(str(results)), space=space, dataset=dataset, hp=hp, seed=seed, shard=shard, of=of, plan=plan,
                         archs=_index_list(archs), device=device, threads=threads, protocol=protocol,
                         latency_repeats=latency_repeats, engine=engine, weights_out=weights_out,
                         **{k: v for k, v in given.items() if v is not None})
    typer.echo(f"wrote {run_shard(job)}")


PARAMS_OPTION = typer.Option("--params", help="The configuration, checked against workflow/schemas/params.schema.yaml.")
RESULTS_OPTION = typer.Option("--results", help="Root of all phase outputs (laid out as nasforge.paths says).")
PARAMS_JSON_OPTION = typer.Option("--params-json", help="The relevant part of an already-checked configuration as "
                                  "JSON (how Snakemake rules pass it); overrides --params.")


MAX_SEED = 2**32 - 1
DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


def _json_object(text: str | None, option: str) -> dict | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        _fail(f"{option}: not valid JSON ({err.msg} at character {err.pos}): {text[:80]!r}")
    if not isinstance(value, dict):
        _fail(f"{option}: expected a JSON object {{...}}, got {type(value).__name__}")
    return value


def _params(path: Path, inline: str | None = None) -> dict:
    """The configuration: params.yaml checked whole, or a rule's ``--params-json`` section checked
    against the same schema (a section may omit whole top-level keys, never break one)."""
    from nasforge.config import check_params, load_params

    if inline is not None:
        params = _json_object(inline, "--params-json")
        check_params(params, _schema(), "--params-json", partial=True)
        return params
    return load_params(path)


def _schema() -> Path:
    from nasforge.config import DEFAULT_SCHEMA

    beside = Path(__file__).resolve().parents[2] / DEFAULT_SCHEMA
    return DEFAULT_SCHEMA if DEFAULT_SCHEMA.is_file() else beside


def _results(path: Path) -> Results:
    if not path.is_dir():
        _fail(f"--results {path}: no such folder; pass the folder the pipeline writes (results)")
    return results_at(path)


@app.command("check-params", rich_help_panel=TOOLS)
def check_params_cmd(params: Annotated[Path, typer.Argument(help="params.yaml to check.")] = Path("params.yaml")) -> None:
    """Check params.yaml against its schema, naming every wrong key; print the configuration a run uses.

    The printed configuration has the schema's defaults filled in and each budget's training
    protocol resolved."""
    import yaml

    from nasforge.protocol import Protocol

    p = _params(params)
    protocols = {hp: Protocol.nats(hp).with_overrides(p["train"]["protocol"]) for hp in p["train"]["budgets"]}
    effective = {**p, "effective_protocol": {hp: {**pr.as_dict(), "epochs": pr.total_epochs(hp)}
                                             for hp, pr in protocols.items()}}
    typer.echo(f"{params}: ok; `nasforge pipeline --params {params}` runs with (this file alone, nothing merged in):")
    typer.echo(yaml.safe_dump(effective, sort_keys=False).rstrip())


@app.command("plan", rich_help_panel=PIPELINE)
def plan_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Plan table [default: results/plan/SPACE.parquet].")] = None,
) -> None:
    """Plan phase: sample the architectures to train and pack them into cost-balanced shards."""
    import polars as pl

    from nasforge.plan import make_plan
    from nasforge.schema import PLAN_KEYS, PLAN_SCHEMA
    from nasforge.tables import write_table

    p = _params(params, params_json)
    plan = p["plan"]
    try:
        table = make_plan(p["space"], plan["archs"], plan["shards"], plan["sample_seed"], plan["include"],
                          plan["groups"])
    except InputError as err:  # the plan's settings came from this file: name it
        raise InputError(f"{'--params-json' if params_json is not None else params}: {err}") from None
    out = out or Path(RESULTS.plan(p["space"]))
    write_table(table.select(list(PLAN_SCHEMA)), out, PLAN_KEYS)
    loads = table.group_by("shard").agg(pl.col("flops").sum()).sort("shard")["flops"].to_list()
    typer.echo(f"wrote {out}: {table.height} archs in {plan['shards']} shards (MFLOPs per shard {min(loads):.0f}-"
               f"{max(loads):.0f}), {table.select('shard', 'group').n_unique()} fused groups")


@app.command("aggregate", rich_help_panel=PIPELINE)
def aggregate_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Aggregate phase: gather every shard into the benchmark's tables; stop if any arch is missing or doubled."""
    from nasforge.aggregate import ShardSet, aggregate

    p = _params(params, params_json)
    space, r = p["space"], _results(results)
    written = aggregate(ShardSet.from_params(p, r), Path(r.plan(space)), Path(r.aggregate(space)),
                        Path(r.measured_aggregate(space)))
    typer.echo("wrote " + ", ".join(str(w) for w in written.values()))


@app.command("validate", rich_help_panel=PIPELINE)
def validate_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Validate phase: audit the benchmark's tables with great-expectations; any broken check fails it.

    A failure exits 1 and blocks the release; the report and Data Docs stay on disk."""
    from nasforge.validate import expected_from_params, validate

    p = _params(params, params_json)
    space, r = p["space"], _results(results)
    summary = validate(Path(r.aggregate_table(space, "epochs")), Path(r.aggregate_table(space, "archs")),
                       expected_from_params(p, Path(r.plan(space))), Path(r.validate(space)))
    typer.echo(f"validation passed: {summary['expectations']} expectations; report in {r.validate(space)}")


@app.command("analyse", rich_help_panel=PIPELINE)
def analyse_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Analysis phase: draw NATS-Bench-style figures and write the headline metrics.

    Proxy correlations are added when the search phase's proxies table exists."""
    from nasforge.analysis import analyse

    space, r = _params(params, params_json)["space"], _results(results)
    proxies = Path(r.search_file(space, "proxies.parquet"))
    paths = analyse(Path(r.aggregate_table(space, "archs")), Path(r.analysis(space)),
                    proxies if proxies.is_file() else None)
    typer.echo(f"wrote {len(paths)} files to {r.analysis(space)}")


@app.command("proxies", rich_help_panel=PIPELINE)
def proxies_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
    dataset: Annotated[str | None, typer.Option("--dataset", help="Score this dataset only, into "
                       "search/{space}/proxies/ (one pipeline job).")] = None,
    gather: Annotated[bool, typer.Option("--gather", help="Gather the per-dataset tables into proxies.parquet.")] = False,
) -> None:
    """Search phase: score every planned arch with the training-free proxies at initialisation."""
    from nasforge.search.phase import compute_proxies

    if dataset and gather:
        _fail("pass --dataset (one job) or --gather, not both")
    typer.echo(f"wrote {compute_proxies(_params(params, params_json), _results(results), dataset, gather)}")


@app.command("search-suite", rich_help_panel=PIPELINE)
def search_suite_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
    algorithm: Annotated[str | None, typer.Option("--algorithm", help="Run this algorithm only, on --dataset "
                         "only, into search/{space}/runs/ (one pipeline job).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="With --algorithm: the dataset.")] = None,
    gather: Annotated[bool, typer.Option("--gather", help="Gather the jobs' runs/ tables instead of running "
                      "the algorithms here.")] = False,
) -> None:
    """Search phase: run every configured NAS algorithm on the aggregated benchmark.

    Or one (algorithm, dataset) job of it, or gather those jobs into the suite's tables and figure."""
    from nasforge.search.phase import run_search_algorithm, run_search_suite

    p = _params(params, params_json)
    if (algorithm is None) != (dataset is None) or (gather and algorithm):
        _fail("pass --algorithm and --dataset together (one job), or --gather, or neither (the whole suite)")
    if algorithm:
        typer.echo(f"wrote {run_search_algorithm(p, _results(results), algorithm, dataset)}")
        return
    paths = run_search_suite(p, _results(results), list(p["datasets"]) if gather else None)
    typer.echo(f"wrote {len(paths)} files to {paths[0].parent}")


@app.command("oneshot", rich_help_panel=PIPELINE)
def oneshot_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
    algorithm: Annotated[str | None, typer.Option("--algorithm", help="A weight-sharing search: darts-v1, darts-v2, "
                         "gdas, setn, random, enas (TSS); tas, mask_gumbel, mask_rl (SSS).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="With --algorithm: the prepared dataset.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, max=MAX_SEED, help="With --algorithm: the search seed.")] = None,
    score: Annotated[bool, typer.Option("--score", help="Score every configured search's derived archs on the "
                     "benchmark (training those it lacks) and write the phase's table, figure and summary.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", min=1, help="With --score: train jobs run side by side (each "
                    "with the configured threads; the bytes do not depend on it).")] = 1,
) -> None:
    """Oneshot phase: one weight-sharing search job, checkpointed each epoch (a rerun resumes it).

    Or, with --score, every derived arch given its true accuracy and the phase's results."""
    from nasforge.oneshot.phase import run_oneshot_job, run_oneshot_score

    p = _params(params, params_json)
    if score == (algorithm is not None) or (algorithm is not None and (dataset is None or seed is None)):
        _fail("pass --algorithm, --dataset and --seed (one search job), or --score")
    if score:
        paths = run_oneshot_score(p, _results(results), jobs)
        typer.echo(f"wrote {len(paths)} files to {paths['summary'].parent}")
        return
    typer.echo(f"wrote {run_oneshot_job(p, _results(results), algorithm, dataset, seed)}")


@app.command("pipeline", rich_help_panel=TOOLS)
def pipeline_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    profile: Annotated[Path, typer.Option("--profile", help="Snakemake profile: workflow/profiles/{default,slurm,kubernetes}.")] = Path("workflow/profiles/default"),
    cores: Annotated[str, typer.Option("--cores", help="Cores for local jobs ('all' or a number).")] = "all",
    forcerun: Annotated[list[str] | None, typer.Option("--forcerun", help="Rerun this rule (and what follows) even "
                        "if its outputs exist, e.g. after editing a table by hand; repeatable.")] = None,
    targets: Annotated[list[str] | None, typer.Argument(help="Snakemake targets (default: the release).")] = None,
) -> None:
    """Rebuild the benchmark end to end with Snakemake, then say where the release is."""
    import os
    import subprocess
    import sys

    from nasforge.release import release_name

    p = _params(params)
    env = dict(os.environ)
    # Rules call `nasforge`: put this interpreter's scripts first, so a venv needs no activation.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    base = [sys.executable, "-m", "snakemake", "--profile", str(profile), "--configfile", str(params)]
    _recover(base, env)
    command = [*base, "--cores", cores, *(["--forcerun", *forcerun] if forcerun else []), *(targets or [])]
    code = subprocess.call(command, env=env)
    if code:
        typer.secho(f"pipeline failed (snakemake exit {code}); logs in results/logs/", err=True, fg=typer.colors.RED)
        raise typer.Exit(code)
    if not targets:
        _record_in_dvc(params, env)
        release = RESULTS.release(release_name(p))
        typer.echo(f"release: {release} (check it with `nasforge release verify {release}`)")


def _record_in_dvc(params: Path, env: dict) -> None:
    """Record what Snakemake built in dvc.lock (``dvc commit``: hashes, no rerun), so ``dvc status`` is clean
    and ``release publish`` works right after the build instead of after a second build by ``dvc repro``.
    DVC's stages version params.yaml's build (``vars: [params.yaml]``), so another params file is not recorded."""
    import subprocess
    import sys

    here = Path.cwd()
    if not (here / "dvc.yaml").is_file() or not (here / ".dvc").is_dir():
        return  # not a nasforge checkout with DVC: nothing to record in
    if params.resolve() != (here / "params.yaml").resolve():
        typer.echo(f"dvc.lock not updated: DVC versions the build of params.yaml, this one used {params}")
        return
    try:
        result = subprocess.run([sys.executable, "-m", "dvc", "commit", "--force", "--quiet", "dvc.yaml"], env=env,
                                capture_output=True, text=True, timeout=1800, check=False)
    except subprocess.TimeoutExpired:
        result = None
    if result is None or result.returncode:
        why = "timed out" if result is None else (result.stderr or result.stdout).strip()[-300:]
        typer.secho(f"warning: the build is done, but recording it in dvc.lock failed ({why}); run `dvc commit "
                    "--force` before `nasforge release publish`", err=True, fg=typer.colors.YELLOW)
        return
    typer.echo("dvc.lock records this build (`dvc status` is clean; `nasforge release publish` can run now)")


def _recover(base: list[str], env: dict) -> None:
    """Make a rerun after a killed pipeline just resume (see nasforge.recovery)."""
    import subprocess

    from nasforge import recovery

    here = Path.cwd()
    running = recovery.snakemake_running_in(here)
    if running:
        _fail(f"Snakemake is already running in {here} (pid {', '.join(map(str, running))}); wait for it to end "
              "or stop it, then run this again")
    keep = recovery.finished_shards(here, recovery.incomplete_outputs(here))
    if recovery.stale_locks(here):
        typer.echo("a killed run left Snakemake's lock behind and no Snakemake process is running here: unlocking")
        unlock = subprocess.run([*base, "--unlock"], env=env, capture_output=True, text=True, check=False)
        if unlock.returncode or recovery.stale_locks(here):
            _fail(f"could not remove Snakemake's stale lock ({(unlock.stderr or unlock.stdout).strip()[-300:]}); "
                  f"remove {here / '.snakemake/locks'} by hand once no Snakemake runs here")
    if keep:
        typer.echo(f"keeping {len(keep) // 3} train shard(s) that finished while their run was killed")
        # Clears their incomplete marks; Snakemake then exits 1 saying a job that never finished has
        # no metadata record to delete, which is expected here. Whether the marks went is what counts.
        subprocess.run([*base, "--cleanup-metadata", *keep], env=env, capture_output=True, check=False)
        left = set(keep) & set(recovery.incomplete_outputs(here))
        if left:
            _fail(f"could not clear Snakemake's incomplete marks of {sorted(left)}; run "
                  f"`snakemake --cleanup-metadata {' '.join(sorted(left))}` or delete those files to retrain them")


@app.command("query", rich_help_panel=TOOLS)
def query_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder.")],
    arch: Annotated[str, typer.Argument(help="A NATS-Bench index or an arch string.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset [default: every one in the release].")] = None,
    hp: Annotated[str | None, typer.Option("--hp", help="Budget [default: every one in the release].")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="One seed [default: the mean over seeds].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Final metrics and cost of one architecture in a release."""
    from nasforge.api import Benchmark

    bench = Benchmark.open(release)
    index = bench.index_of(arch)
    results = []
    for d in [dataset] if dataset else bench.datasets:
        for h in [hp] if hp else bench.budgets:
            results.append({"dataset": d, "hp": h, "seed": seed, **bench.final(index, d, h, seed),
                            **bench.cost(index, d, h)})
    info = {"index": index, "arch": get_space(bench.space).arch(index), "canonical_index": bench.canonical(index),
            "results": results}
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    typer.echo(f"{index}  {info['arch']}  (canonical {info['canonical_index']})")
    for r in results:
        typer.echo(f"  {r['dataset']} hp{r['hp']} " + ("mean" if seed is None else f"seed {seed}") + ": " + ", ".join(
            f"{k} {v:.4g}" for k, v in r.items() if k not in ("dataset", "hp", "seed") and isinstance(v, float)))


@app.command("search", rich_help_panel=TOOLS)
def search_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder.")],
    algo: Annotated[str, typer.Option("--algo", help="random, rea, reinforce, bohb or local.")] = "rea",
    runs: Annotated[int, typer.Option("--runs", min=1, max=1_000_000, help="Independent runs (seeds 0..runs-1 from --first-seed).")] = 100,
    dataset: Annotated[str | None, typer.Option("--dataset", help="[default: the release's first dataset].")] = None,
    hp: Annotated[str | None, typer.Option("--hp", help="Budget searched [default: the release's first].")] = None,
    time_budget: Annotated[float, typer.Option("--time-budget", help="Simulated seconds per run (NATS-Bench TSS: "
                           "20000 cifar10, 40000 cifar100, 120000 ImageNet16-120).")] = 20_000.0,
    first_seed: Annotated[int, typer.Option("--first-seed", min=0, max=MAX_SEED, help="Seed of the first run.")] = 0,
    max_evaluations: Annotated[int, typer.Option("--max-evaluations", min=1, help="Most evaluations per run, "
                               "whatever the time budget.")] = 10_000,
    time_model: Annotated[str, typer.Option("--time-model", help="measured: this build's train seconds "
                          "(NATS-Bench's protocol); flops: seconds from the cost model at --gflops.")] = "measured",
    gflops: Annotated[float, typer.Option("--gflops", help="Throughput of the flops time model.")] = 100.0,
    out: Annotated[Path | None, typer.Option("--out", help="Write the trajectories here (parquet).")] = None,
) -> None:
    """Run a multi-trial NAS algorithm on a release, NATS-Bench's simulated-time protocol."""
    import sys

    from rich.progress import Progress

    from nasforge.api import Benchmark
    from nasforge.schema import TRAJECTORY_KEYS
    from nasforge.search import TimeModel, final_results, run_search
    from nasforge.tables import write_table

    model = TimeModel(time_model, gflops)
    bench = Benchmark.open(release)
    dataset, hp = dataset or bench.datasets[0], hp or bench.budgets[0]
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
        task = progress.add_task(f"{algo} runs", total=runs)
        trajectories = run_search(bench, algo, dataset, hp, time_budget, runs, first_seed,
                                  on_run=lambda _: progress.advance(task), time_model=model,
                                  max_evaluations=max_evaluations)
    if out:
        write_table(trajectories, out, TRAJECTORY_KEYS)
    r = final_results(trajectories).row(0, named=True)
    std = r["test_acc_std"] if r["test_acc_std"] is not None else float("nan")
    typer.echo(f"{algo} on {dataset} hp{r['hp']}, {runs} runs of {time_budget:g} simulated s: "
               f"test accuracy of the chosen arch {r['test_acc_mean']:.2f} +- {std:.2f}"
               + (f"; trajectories in {out}" if out else ""))


release_app = typer.Typer(help="Build (pipeline step), verify, publish, fetch and compare benchmark releases.", no_args_is_help=True)
app.add_typer(release_app, name="release", rich_help_panel=PIPELINE)


@release_app.command("build")
def release_build_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Release phase: assemble the versioned release folder (tables, figures, validation, manifest, data card)."""
    from nasforge.release import build_release

    p = _params(params, params_json)
    space, r = p["space"], _results(results)
    out = build_release(p, Path(r.plan(space)), Path(r.aggregate(space)), Path(r.measured_aggregate(space)),
                        Path(r.validate(space)), Path(r.analysis(space)), Path(r.releases()),
                        Path(r.search(space)) if "search" in p else None,
                        Path(r.oneshot()) if p.get("oneshot", {}).get("algorithms") else None)
    typer.echo(f"release ready: {out}")


@release_app.command("verify")
def release_verify_cmd(folder: Annotated[Path, typer.Argument(help="A release folder.")]) -> None:
    """Recheck the sha256 of every file of a release against its manifests."""
    from nasforge.release import verify

    problems = verify(folder)
    if problems:
        for problem in problems:
            typer.secho(problem, err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(f"{folder}: every file matches its manifest")


@release_app.command("publish")
def release_publish_cmd(
    folder: Annotated[Path, typer.Argument(help="A release folder that a committed dvc.lock records.")],
    remote: Annotated[str, typer.Option("--remote", help="The DVC remote to push to (`dvc remote list`).")],
    git_remote: Annotated[str | None, typer.Option("--git-remote", help="Also push the tag to this git remote.")] = None,
) -> None:
    """Push a release and its intermediates to a DVC remote and tag the commit with the release's name."""
    from nasforge.publish import publish

    record = publish(folder, remote, git_remote)
    typer.echo(f"published {record['name']}: tag {record['name']} on {record['commit'][:12]}, DVC remote "
               f"{record['remote']['name']} ({record['remote']['url']}), dvc.lock sha256 {record['dvc_lock']['sha256']}")


@release_app.command("fetch")
def release_fetch_cmd(
    name: Annotated[str, typer.Argument(help="The release's name, its git tag (e.g. nasforge-tss-v0.2.0).")],
    remote: Annotated[str | None, typer.Option("--remote", help="Pull from this DVC remote [default: the one it was "
                                                                "published to].")] = None,
    intermediates: Annotated[bool, typer.Option("--intermediates", help="Also pull every intermediate.")] = False,
) -> None:
    """In a clone checked out at the release's tag: pull the release from DVC (nothing re-runs) and verify it."""
    from nasforge.publish import fetch

    record = fetch(name, Path.cwd(), remote, intermediates)
    typer.echo(f"{record['release']}: fetched from {remote or record['remote']['name']}; every file matches its "
               "manifest and the manifest matches the tag")


@release_app.command("diff")
def release_diff_cmd(
    a: Annotated[Path, typer.Argument(help="The older release folder.")],
    b: Annotated[Path, typer.Argument(help="The newer release folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Everything, as JSON.")] = False,
) -> None:
    """Changed archs and metrics, tables and figures, protocol and params between two releases."""
    from nasforge.publish.diff import describe, diff_releases

    d = diff_releases(a, b)
    typer.echo(json.dumps(d, indent=2, sort_keys=True, default=str) if as_json else describe(d))


@app.command("import", rich_help_panel=PIPELINE)
def import_cmd(
    source: Annotated[Path, typer.Argument(help="A NATS-Bench simple folder (NATS-tss-v1_0-3ffb9-simple/), a NATS-Bench "
                                                "*.pickle.pbz2 file or a NAS-Bench-201 *.pth file.")],
    out: Annotated[Path, typer.Option("--out", help="The release folder to write (replaced only once the import succeeds).")],
    space: Annotated[str, typer.Option("--space", callback=_space_name, help="tss or sss (NAS-Bench-201 is tss).")] = "tss",
    version: Annotated[str, typer.Option("--version", help="The release's version.")] = "1.0.0",
    weights: Annotated[bool, typer.Option("--weights", help="Also import the trained weights of NATS-Bench's "
                                                            "\"full\" files and NB-201's .pth (served by get_net_param).")] = False,
) -> None:
    """Import phase: convert a published NATS-Bench / NAS-Bench-201 benchmark into an audited release."""
    from nasforge.imports import import_release

    summary = import_release(source, space, out, version, weights=weights)
    found = {k: v for k, v in summary["findings"].items() if v}
    typer.echo(f"release ready: {summary['release']} ({summary['archs']} archs, {summary['rows']} results"
               + (f", {summary['weights_skipped']} weight tensors skipped" if summary["weights_skipped"] else "")
               + (f", weights of {summary['weights_runs']} runs" if summary["weights_runs"] else "") + ")")
    typer.echo("audit findings (archs): " + (", ".join(f"{k} {v}" for k, v in found.items()) or "none"))


@app.command("audit")
def audit_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder (built or imported).")],
    sample: Annotated[int, typer.Option("--sample", help="How many archs to re-train (stratified by accuracy and cost).")],
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the sample.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Where the audit goes [default: audit-RELEASE].")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The prepared dataset the release trained on "
                                                             "[default: mnist5k is prepared here; others must be given].")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="[default: the release's first dataset].")] = None,
    hp: Annotated[str | None, typer.Option("--hp", help="[default: the release's first budget].")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
) -> None:
    """Re-train a stratified sample of a release's archs and compare them with its tables (exit 1 on failure)."""
    from nasforge.replicate import audit_release

    out = out or Path(f"audit-{release.resolve().name}")
    summary = audit_release(release, sample, out, seed, data, dataset, hp, device)
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items() if v)
    typer.echo(f"audit of {summary['release']}: {summary['verdict']} ({counts}); report: {out / 'report.md'}")
    if not summary["passed"]:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
