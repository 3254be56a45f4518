"""The ``nasforge`` command line: every pipeline step is one subcommand, so each
Snakemake rule stays a thin call and each step is testable on its own."""

from __future__ import annotations

import json
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
    num_classes: Annotated[int, typer.Option("--num-classes", help="Classifier outputs: 10, 100 or 120.")] = 10,
    input_size: Annotated[int, typer.Option("--input-size", help="Image side in pixels: 32 (CIFAR) or 16 (ImageNet16).")] = 32,
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
    seed: Annotated[int, typer.Option("--seed", help="Training seed (NATS-Bench: 777, 888, 999).")],
    shard: Annotated[int, typer.Option("--shard", help="This job's shard, 0-based.")] = 0,
    of: Annotated[int, typer.Option("--of", help="Number of shards.")] = 1,
    plan: Annotated[Path | None, typer.Option("--plan", help="Plan table assigning archs to shards.")] = None,
    archs: Annotated[str | None, typer.Option("--archs", help="Explicit comma-separated arch indices (overrides --plan).")] = None,
    data: Annotated[Path, typer.Option("--data", help="Folder of prepared datasets.")] = Path("results/data"),
    out: Annotated[Path, typer.Option("--out", help="Root of the training tables.")] = Path("results/train"),
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda[:N].")] = "auto",
    threads: Annotated[int, typer.Option("--threads", help="torch CPU threads (fixed: results depend on it).")] = 1,
    params: Annotated[Path | None, typer.Option("--params", help="params.yaml whose train.protocol overrides NATS-Bench's.")] = None,
    latency_repeats: Annotated[int, typer.Option("--latency-repeats", help="Timed forward passes per latency figure.")] = 5,
) -> None:
    """Train one shard of architectures and write its tables (resumes a killed job)."""
    from nasforge.train import Protocol, ShardJob, run_shard

    try:
        protocol = Protocol.nats(hp).with_overrides(_protocol_overrides(params))
        job = ShardJob(space, dataset, hp, seed, shard, of, data, out, plan, _index_list(archs), device, threads,
                       protocol, latency_repeats)
        path = run_shard(job)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"wrote {path}")


def _protocol_overrides(params: Path | None) -> dict | None:
    if params is None:
        return None
    import yaml

    return (yaml.safe_load(params.read_text()) or {}).get("train", {}).get("protocol")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
