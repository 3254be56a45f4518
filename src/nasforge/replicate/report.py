"""The audit's outputs: a table, a figure and a short report, each byte-stable."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from nasforge.schema import SHARD_KEYS
from nasforge.tables import write_table

_COLOURS = {"identical": "tab:green", "within_noise": "tab:blue", "not_identical": "tab:orange",
            "outside_noise": "tab:red"}


def write_report(out: Path, summary: dict, table: pl.DataFrame, retrained: pl.DataFrame) -> None:
    from nasforge.analysis import STYLE, save_figure

    write_table(table, out / "audit.parquet", ["arch_index", "seed"])
    write_table(retrained, out / "retrained.parquet", SHARD_KEYS)
    (out / "audit.json").write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5, 4.5))
        values = table.drop_nulls(["release_test_acc", "retrained_test_acc"])
        low = min(values["release_test_acc"].min() or 0.0, values["retrained_test_acc"].min() or 0.0)
        high = max(values["release_test_acc"].max() or 100.0, values["retrained_test_acc"].max() or 100.0)
        span = [low - 1, high + 1]
        tol = summary["tolerance"]
        ax.plot(span, span, color="black", linewidth=0.8)
        ax.fill_between(span, [s - tol for s in span], [s + tol for s in span], color="grey", alpha=0.2,
                        label=f"tolerance +-{tol:.2f}")
        for verdict, colour in _COLOURS.items():
            part = values.filter(pl.col("verdict") == verdict)
            if part.height:
                ax.scatter(part["release_test_acc"], part["retrained_test_acc"], s=18, color=colour,
                           label=f"{verdict} ({part.height})")
        ax.set_xlabel(f"release test accuracy (%), {summary['dataset']} hp {summary['hp']}")
        ax.set_ylabel("re-trained test accuracy (%), same seed")
        ax.set_title(f"{summary['release']}: {summary['verdict']}")
        ax.legend(fontsize=7, loc="upper left")
        save_figure(fig, out / "audit.png")
    (out / "report.md").write_text(_markdown(summary, table))


def _markdown(summary: dict, table: pl.DataFrame) -> str:
    def number(x) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"# Audit of {summary['release']} by re-training",
        "",
        f"**Verdict: {summary['verdict']}** ({'passed' if summary['passed'] else 'FAILED'}). "
        f"{len(summary['archs'])} archs of {summary['dataset']} at hp {summary['hp']} re-trained, every seed "
        f"the release holds for them (stratified sample, seed {summary['seed']}), with the {summary['engine']} "
        f"engine at {summary['threads']} thread(s) under the release's protocol.",
        "",
        f"- Expectation: {'byte-identical rows' if summary['expect_identical'] else 'agreement within seed noise'}"
        f" ({summary['why']}).",
        f"- Seed noise (pooled std of the release's final test accuracy): {summary['seed_noise']:.3f} points; "
        f"tolerance on a final accuracy: {summary['tolerance']:.3f} points.",
        f"- Release manifest sha256 `{summary['manifest_sha256']}`; data manifest sha256 "
        f"`{summary['data_manifest_sha256']}`.",
        "",
        "| arch | seed | strata (acc, cost) | rows differing | release test | re-trained test | max final diff | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.iter_rows(named=True):
        lines.append(f"| {r['arch_index']} | {r['seed']} | {r['accuracy_stratum']}, {r['cost_stratum']} | "
                     f"{r['epochs_differing']} / {r['epochs']} | {number(r['release_test_acc'])} | "
                     f"{number(r['retrained_test_acc'])} | {number(r['max_final_difference'])} | {r['verdict']} |")
    return "\n".join(lines) + "\n"
