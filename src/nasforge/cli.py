"""The ``nasforge`` command line: every pipeline step is one subcommand, so each
Snakemake rule stays a thin call and each step is testable on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from nasforge.spaces import SPACE_NAMES, get_space

app = typer.Typer(
    name="nasforge",
    help="Build, rebuild, audit and publish NAS benchmarks (NATS-Bench's TSS and SSS).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(2)


def _space_name(value: str) -> str:
    if value.lower() not in SPACE_NAMES:
        raise typer.BadParameter(f"expected one of {list(SPACE_NAMES)}, got {value!r}")
    return value.lower()


@app.command("space")
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
    try:
        index = sp.index(arch) if not arch.strip().lstrip("-").isdigit() else int(arch)
        arch_str = sp.arch(index)
    except ValueError as err:
        _fail(str(err))
    info = {"space": space, "index": index, "arch": arch_str}
    if space == "tss":
        info["canonical"] = sp.canonical(index)
        info["canonical_index"] = sp.canonical_index(index)
    info.update({f"{k}_M": round(v, 6) for k, v in cost(space, arch_str, num_classes, input_size).items()})
    info.update(num_classes=num_classes, input_size=input_size)
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    width = max(map(len, info))
    for key, value in info.items():
        typer.echo(f"{key:<{width}}  {value}")


@app.command("spaces")
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
        }
        if name == "tss":
            entry["unique_topologies"] = sp.unique_count()
        summary[name] = entry
    if as_json:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    for name, entry in summary.items():
        typer.echo(f"{name.upper()}")
        for key, value in entry.items():
            typer.echo(f"  {key:<18} {value}")


@app.command("prepare")
def prepare_cmd(
    dataset: Annotated[str, typer.Argument(help="cifar10-valid, cifar10, cifar100, ImageNet16-120 or mnist5k.")],
    source: Annotated[
        Path | None,
        typer.Option("--source", help="Official archive or folder (cifar-10-python.tar.gz, cifar-100-python.tar.gz, "
                     "the ImageNet16 pickles' folder). Not needed for mnist5k."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Parent folder of prepared datasets.")] = Path("results/data"),
) -> None:
    """Verify a dataset's source and write it, with NATS-Bench's splits, to OUT/DATASET."""
    from nasforge.data import SourceError, prepare, read_manifest

    try:
        folder = prepare(dataset, out, source)
    except (SourceError, ValueError) as err:
        _fail(str(err))
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


@app.command("train-shard")
def train_shard_cmd(
    space: Annotated[str, typer.Option("--space", help="tss or sss.", callback=_space_name)],
    dataset: Annotated[str, typer.Option("--dataset", help="A prepared dataset, e.g. cifar10-valid or mnist5k.")],
    hp: Annotated[str, typer.Option("--hp", help="Budget in epochs, NATS-Bench style: 01, 12, 90, 200.")],
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Training seed (NATS-Bench: 777, 888, 999).")],
    shard: Annotated[int, typer.Option("--shard", min=0, help="This job's shard, 0-based.")] = 0,
    of: Annotated[int, typer.Option("--of", min=1, help="Number of shards.")] = 1,
    plan: Annotated[Path | None, typer.Option("--plan", help="Plan table assigning archs to shards.")] = None,
    archs: Annotated[str | None, typer.Option("--archs", help="Explicit comma-separated arch indices (overrides --plan).")] = None,
    data: Annotated[Path, typer.Option("--data", help="Folder of prepared datasets.")] = Path("results/data"),
    out: Annotated[Path, typer.Option("--out", help="Root of the training tables.")] = Path("results/train"),
    measured_out: Annotated[Path | None, typer.Option("--measured-out", help="Root of the measured timing and cost "
                            "tables [default: OUT's sibling measured/train].")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads (fixed: results depend on it).")] = 1,
    protocol_json: Annotated[str | None, typer.Option("--protocol-json", help="Overrides of NATS-Bench's protocol "
                             "as JSON, e.g. '{\"batch_size\": 128}' (params.yaml's train.protocol).")] = None,
    latency_repeats: Annotated[int, typer.Option("--latency-repeats", min=0, help="Timed forward passes per latency "
                               "figure; 0: not measured (the pipeline measures it in the first seed's jobs only).")] = 3,
    engine: Annotated[str, typer.Option("--engine", help="reference (one arch at a time) or fused (the plan's "
                      "groups, or packed here, trained as one computation).")] = "reference",
) -> None:
    """Train one shard of architectures and write its tables (resumes a killed job)."""
    from nasforge.data.registry import DATASETS
    from nasforge.train import Protocol, ShardJob, run_shard

    if dataset not in DATASETS:
        _fail(f"--dataset {dataset!r} is not a dataset nasforge knows; expected one of {sorted(DATASETS)}")
    if not DEVICE.match(device):
        _fail(f"--device {device!r} is not allowed; expected auto, cpu, cuda or cuda:N")
    try:
        protocol = Protocol.nats(hp).with_overrides(_json_object(protocol_json, "--protocol-json"))
        measured = measured_out or out.parent / "measured" / out.name
        job = ShardJob(space, dataset, hp, seed, shard, of, data, out, measured, plan, _index_list(archs), device,
                       threads, protocol, latency_repeats, engine)
        path = run_shard(job)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"wrote {path}")


PARAMS_OPTION = typer.Option("--params", help="The configuration, checked against workflow/schemas/params.schema.yaml.")
RESULTS_OPTION = typer.Option("--results", help="Root of all phase outputs.")
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
    from nasforge.config import ParamsError, check_params, load_params

    try:
        if inline is not None:
            params = _json_object(inline, "--params-json")
            check_params(params, _schema(), "--params-json", partial=True)
            return params
        return load_params(path)
    except ParamsError as err:
        _fail(str(err))


def _schema() -> Path:
    from nasforge.config import DEFAULT_SCHEMA

    beside = Path(__file__).resolve().parents[2] / DEFAULT_SCHEMA
    return DEFAULT_SCHEMA if DEFAULT_SCHEMA.is_file() else beside


def _results(path: Path) -> Path:
    if not path.is_dir():
        _fail(f"--results {path}: no such folder; pass the folder the pipeline writes (results)")
    return path


@app.command("check-params")
def check_params_cmd(params: Annotated[Path, typer.Argument(help="params.yaml to check.")] = Path("params.yaml")) -> None:
    """Check params.yaml against its schema; name every wrong key and what is allowed; then print the
    configuration a pipeline run with it uses, with each budget's training protocol resolved."""
    import yaml

    from nasforge.train.protocol import Protocol

    p = _params(params)
    protocols = {hp: Protocol.nats(hp).with_overrides(p["train"].get("protocol")) for hp in p["train"]["budgets"]}
    effective = {**p, "effective_protocol": {hp: {**pr.as_dict(), "epochs": pr.total_epochs(hp)}
                                             for hp, pr in protocols.items()}}
    typer.echo(f"{params}: ok; `nasforge pipeline --params {params}` runs with (this file alone, nothing merged in):")
    typer.echo(yaml.safe_dump(effective, sort_keys=False).rstrip())


@app.command("plan")
def plan_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Plan table [default: results/plan/{space}.parquet].")] = None,
) -> None:
    """Sample the architectures to train and pack them into cost-balanced shards."""
    import polars as pl

    from nasforge.spaces.plan import PLAN_SCHEMA, make_plan
    from nasforge.tables import write_table

    p = _params(params, params_json)
    plan = p["plan"]
    try:
        table = make_plan(p["space"], plan["archs"], plan["shards"], plan.get("sample_seed", 0), plan.get("include"),
                          plan.get("groups"))
    except ValueError as err:
        _fail(f"{params}: {err}")
    out = out or Path(f"results/plan/{p['space']}.parquet")
    write_table(table.select(list(PLAN_SCHEMA)), out, ["arch_index"])
    loads = table.group_by("shard").agg(pl.col("flops").sum()).sort("shard")["flops"].to_list()
    typer.echo(f"wrote {out}: {table.height} archs in {plan['shards']} shards (MFLOPs per shard {min(loads):.0f}-"
               f"{max(loads):.0f}), {table.select('shard', 'group').n_unique()} fused groups")


@app.command("aggregate")
def aggregate_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Gather every shard into the benchmark's tables; stop if any arch is missing or doubled."""
    from nasforge.aggregate import CoverageError, Layout, aggregate

    p = _params(params, params_json)
    space = p["space"]
    _results(results)
    try:
        written = aggregate(Layout.from_params(p, results), results / f"plan/{space}.parquet", results / f"bench/{space}",
                            results / f"measured/bench/{space}")
    except (CoverageError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo("wrote " + ", ".join(str(w) for w in written.values()))


@app.command("validate")
def validate_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Audit the benchmark's tables with great-expectations; fail (blocking the release) on any broken check."""
    from nasforge.validate import ValidationFailed, expected_from_params, validate

    p = _params(params, params_json)
    space = p["space"]
    bench = _results(results) / f"bench/{space}"
    try:
        summary = validate(bench / "epochs.parquet", bench / "archs.parquet",
                           expected_from_params(p, results / f"plan/{space}.parquet"), results / f"validate/{space}")
    except ValidationFailed as err:
        typer.secho(f"validation failed: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"validation passed: {summary['expectations']} expectations; report in {results}/validate/{space}")


@app.command("analyse")
def analyse_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Draw NATS-Bench-style figures and write the headline metrics (with proxy correlations
    when the search phase's proxies table exists)."""
    from nasforge.analysis import analyse

    space = _params(params, params_json)["space"]
    proxies = _results(results) / f"search/{space}/proxies.parquet"
    try:
        paths = analyse(results / f"bench/{space}/archs.parquet", results / f"figures/{space}",
                        proxies if proxies.is_file() else None)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"wrote {len(paths)} files to {results}/figures/{space}")


@app.command("proxies")
def proxies_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
    dataset: Annotated[str | None, typer.Option("--dataset", help="Score this dataset only, into "
                       "search/{space}/proxies/ (one pipeline job).")] = None,
    gather: Annotated[bool, typer.Option("--gather", help="Gather the per-dataset tables into proxies.parquet.")] = False,
) -> None:
    """Score every planned arch with the training-free proxies at initialisation (search phase)."""
    from nasforge.search.phase import compute_proxies

    if dataset and gather:
        _fail("pass --dataset (one job) or --gather, not both")
    try:
        out = compute_proxies(_params(params, params_json), _results(results), dataset, gather)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
    typer.echo(f"wrote {out}")


@app.command("search-suite")
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
    """Run every configured NAS algorithm on the aggregated benchmark (search phase); or one
    (algorithm, dataset) job of it, or gather those jobs into the suite's tables and figure."""
    from nasforge.api import QueryError
    from nasforge.search.phase import run_search_algorithm, run_search_suite

    p = _params(params, params_json)
    if (algorithm is None) != (dataset is None) or (gather and algorithm):
        _fail("pass --algorithm and --dataset together (one job), or --gather, or neither (the whole suite)")
    try:
        if algorithm:
            path = run_search_algorithm(p, _results(results), algorithm, dataset)
            typer.echo(f"wrote {path}")
            return
        paths = run_search_suite(p, _results(results), list(p["datasets"]) if gather else None)
    except (FileNotFoundError, ValueError, QueryError) as err:
        _fail(str(err))
    typer.echo(f"wrote {len(paths)} files to {paths[0].parent}")


@app.command("pipeline")
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
        release = Path("results/release") / release_name(p)
        typer.echo(f"release: {release} (check it with `nasforge release verify {release}`)")


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


@app.command("query")
def query_cmd(
    release: Annotated[Path, typer.Argument(help="A release folder.")],
    arch: Annotated[str, typer.Argument(help="A NATS-Bench index or an arch string.")],
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset [default: every one in the release].")] = None,
    hp: Annotated[str | None, typer.Option("--hp", help="Budget [default: every one in the release].")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="One seed [default: the mean over seeds].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Final metrics and cost of one architecture in a release."""
    from nasforge.api import Benchmark, QueryError

    try:
        bench = Benchmark.open(release)
        index = bench.index_of(arch)
        results = []
        for d in [dataset] if dataset else bench.datasets:
            for h in [hp] if hp else bench.budgets:
                results.append({"dataset": d, "hp": h, "seed": seed, **bench.final(index, d, h, seed),
                                **bench.cost(index, d, h)})
    except (QueryError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    from nasforge.spaces import get_space

    info = {"index": index, "arch": get_space(bench.space).arch(index), "canonical_index": bench.canonical(index),
            "results": results}
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True))
        return
    typer.echo(f"{index}  {info['arch']}  (canonical {info['canonical_index']})")
    for r in results:
        typer.echo(f"  {r['dataset']} hp{r['hp']} " + ("mean" if seed is None else f"seed {seed}") + ": " + ", ".join(
            f"{k} {v:.4g}" for k, v in r.items() if k not in ("dataset", "hp", "seed") and isinstance(v, float)))


@app.command("search")
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

    from nasforge.api import Benchmark, QueryError
    from nasforge.search import TimeModel, final_results, run_search
    from nasforge.tables import write_table

    try:
        model = TimeModel(time_model, gflops)
        bench = Benchmark.open(release)
        dataset, hp = dataset or bench.datasets[0], hp or bench.budgets[0]
        with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
            task = progress.add_task(f"{algo} runs", total=runs)
            trajectories = run_search(bench, algo, dataset, hp, time_budget, runs, first_seed,
                                      on_run=lambda _: progress.advance(task), time_model=model,
                                      max_evaluations=max_evaluations)
    except (QueryError, ValueError, FileNotFoundError) as err:
        _fail(str(err))
    if out:
        write_table(trajectories, out, ["algo", "dataset", "hp", "run", "step"])
    r = final_results(trajectories).row(0, named=True)
    std = r["test_acc_std"] if r["test_acc_std"] is not None else float("nan")
    typer.echo(f"{algo} on {dataset} hp{r['hp']}, {runs} runs of {time_budget:g} simulated s: "
               f"test accuracy of the chosen arch {r['test_acc_mean']:.2f} +- {std:.2f}"
               + (f"; trajectories in {out}" if out else ""))


release_app = typer.Typer(help="Build and verify benchmark releases.", no_args_is_help=True)
app.add_typer(release_app, name="release")


@release_app.command("build")
def release_build_cmd(
    params: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
    params_json: Annotated[str | None, PARAMS_JSON_OPTION] = None,
    results: Annotated[Path, RESULTS_OPTION] = Path("results"),
) -> None:
    """Assemble the versioned release folder: tables, figures, validation, manifest, data card."""
    from nasforge.release import build_release

    p = _params(params, params_json)
    space = p["space"]
    _results(results)
    try:
        out = build_release(p, results / f"plan/{space}.parquet", results / f"bench/{space}",
                            results / f"measured/bench/{space}", results / f"validate/{space}",
                            results / f"figures/{space}", results / "release",
                            results / f"search/{space}" if "search" in p else None)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))
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


def main() -> None:
    try:
        app()
    except OSError as err:  # a full disk, a read-only folder, a vanished file: one line, not a traceback
        where = f"{err.filename}: " if err.filename else ""
        typer.secho(f"error: {where}{err.strerror or err}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
