"""The analyse phase: NATS-Bench-style figures and headline numbers of one space.

Figures are PNG from matplotlib's Agg backend with the "Software" stamp
removed (PNG carries no date), so the same tables always give the same bytes.
Only deterministic tables are plotted; measured times would make figures vary.
"""

from __future__ import annotations

import io
import json
from itertools import combinations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from scipy import stats

from nasforge.files import write_checked
from nasforge.tables import read_table

STYLE = {"figure.dpi": 100, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "nasforge"}


def save_figure(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return write_checked(path, buffer.getvalue())


def _settings(archs: pl.DataFrame) -> list[tuple[str, str]]:
    return sorted(set(archs.select("dataset", "hp").iter_rows()))


def _tau(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return None
    return round(float(stats.kendalltau(x[ok], y[ok]).statistic), 6)


def headline(archs: pl.DataFrame) -> dict:
    """Best arch, spread and rank agreement per (dataset, hp)."""
    out = {}
    for dataset, hp in _settings(archs):
        t = archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp)).sort("arch_index")
        ok = t.filter(~pl.col("diverged"))
        best = ok.sort(["test_acc_mean", "arch_index"], descending=[True, False]).row(0, named=True) if ok.height else None
        test = t["test_acc_mean"].to_numpy()
        entry = {
            "archs": t.height,
            "diverged": int(t["diverged"].sum()),
            "test_acc": {"min": round(float(np.nanmin(test)), 4), "median": round(float(np.nanmedian(test)), 4),
                         "max": round(float(np.nanmax(test)), 4)},
            "best": None if best is None else {"arch_index": best["arch_index"], "arch": best["arch"],
                                                "test_acc_mean": round(best["test_acc_mean"], 4)},
            "kendall_tau_params_test": _tau(t["params"].to_numpy(), test),
        }
        if t["valid_acc_mean"].null_count() < t.height:
            entry["kendall_tau_valid_test"] = _tau(t["valid_acc_mean"].to_numpy(), test)
        seeds = _per_seed(t)
        if len(seeds) >= 2:
            (s1, a1), (s2, a2) = list(seeds.items())[:2]
            entry["kendall_tau_seeds"] = {f"{s1}-{s2}": _tau(a1, a2)}
        out[f"{dataset}/hp{hp}"] = entry
    return out


def _per_seed(t: pl.DataFrame) -> dict[int, np.ndarray]:
    """Final test accuracy per seed over the archs trained with every seed."""
    full = t.filter(pl.col("n_seeds") == pl.col("n_seeds").max())
    if not full.height:
        return {}
    seeds = full["seeds"][0].to_list()
    values = np.array(full["test_acc_seeds"].to_list(), dtype=float)
    return {s: values[:, i] for i, s in enumerate(seeds)}


def figures(archs: pl.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(archs)
    paths = []
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for dataset, hp in settings:
            t = archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp))
            ax.hist(t["test_acc_mean"].drop_nans().to_numpy(), bins=20, alpha=0.6, label=f"{dataset} hp{hp}")
        ax.set(xlabel="final test accuracy (%), mean over seeds", ylabel="architectures", title="Accuracy distribution")
        ax.legend()
        paths.append(save_figure(fig, out / "accuracy_distribution.png"))

        fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.5), squeeze=False)
        for ax, (dataset, hp) in zip(axes[0], settings, strict=True):
            t = archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp))
            ax.scatter(t["params"], t["test_acc_mean"], s=10, c=t["flops"], cmap="viridis")
            ax.set(xlabel="params (M)", ylabel="test accuracy (%)", title=f"{dataset} hp{hp}")
        paths.append(save_figure(fig, out / "params_vs_accuracy.png"))

        fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.5), squeeze=False)
        for ax, (dataset, hp) in zip(axes[0], settings, strict=True):
            t = archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp))
            if t["valid_acc_mean"].null_count() == t.height:
                ax.text(0.5, 0.5, f"{dataset} has no validation split", ha="center", transform=ax.transAxes)
            else:
                ax.scatter(t["valid_acc_mean"], t["test_acc_mean"], s=10)
                lo, hi = np.nanmin(t["test_acc_mean"].to_numpy()), np.nanmax(t["test_acc_mean"].to_numpy())
                ax.plot([lo, hi], [lo, hi], lw=0.8, color="grey")
            ax.set(xlabel="valid accuracy (%)", ylabel="test accuracy (%)", title=f"{dataset} hp{hp}")
        paths.append(save_figure(fig, out / "valid_vs_test.png"))

        fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(settings), 1.2 + 1.0 * len(settings)))
        labels = [f"{d}\nhp{h}" for d, h in settings]
        matrix = np.full((len(settings), len(settings)), np.nan)
        by_setting = {s: archs.filter((pl.col("dataset") == s[0]) & (pl.col("hp") == s[1])).sort("arch_index")
                      for s in settings}
        for i, a in enumerate(settings):
            matrix[i, i] = 1.0
            for j, b in enumerate(settings):
                if i < j:
                    joined = by_setting[a].join(by_setting[b], on="arch_index", suffix="_b")
                    tau = _tau(joined["test_acc_mean"].to_numpy(), joined["test_acc_mean_b"].to_numpy())
                    matrix[i, j] = matrix[j, i] = np.nan if tau is None else tau
        image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_title("Kendall tau of test accuracy")
        ax.grid(False)
        fig.colorbar(image, ax=ax, shrink=0.8)
        paths.append(save_figure(fig, out / "rank_correlation.png"))

        fig, axes = plt.subplots(1, len(settings), figsize=(4 * len(settings), 3.5), squeeze=False)
        for ax, setting in zip(axes[0], settings, strict=True):
            seeds = _per_seed(by_setting[setting])
            pairs = list(combinations(seeds, 2))[:3]
            for s1, s2 in pairs:
                ax.scatter(seeds[s1], seeds[s2], s=10, label=f"seed {s1} vs {s2}")
            if not pairs:
                ax.text(0.5, 0.5, "one seed only", ha="center", transform=ax.transAxes)
            else:
                ax.legend()
            ax.set(xlabel="test accuracy (%), seed a", ylabel="test accuracy (%), seed b",
                   title=f"Seed agreement {setting[0]} hp{setting[1]}")
        paths.append(save_figure(fig, out / "seed_agreement.png"))
    return paths


def proxy_correlations(archs: pl.DataFrame, proxies: pl.DataFrame) -> dict[str, dict]:
    """Spearman and Kendall rank correlation of every proxy with final test accuracy (seed mean),
    per (dataset, hp), over the archs with a finite accuracy. A proxy of ``-inf`` (no input
    dependence) ranks last, as a search on it would rank it."""
    from nasforge.schema import PROXIES

    out = {}
    for dataset, hp in _settings(archs):
        t = (archs.filter((pl.col("dataset") == dataset) & (pl.col("hp") == hp))
             .join(proxies, on=["dataset", "arch_index"], how="inner"))
        acc = t["test_acc_mean"].to_numpy()
        entry = {}
        for proxy in (*PROXIES, "params", "flops"):
            score = t[proxy].to_numpy()
            ok = np.isfinite(acc) & ~np.isnan(score)
            if ok.sum() < 3 or np.ptp(acc[ok]) == 0 or len(np.unique(score[ok])) < 2:
                entry[proxy] = {"archs": int(ok.sum()), "spearman": None, "kendall": None}
                continue
            entry[proxy] = {"archs": int(ok.sum()),
                            "spearman": round(float(stats.spearmanr(score[ok], acc[ok]).statistic), 6),
                            "kendall": round(float(stats.kendalltau(score[ok], acc[ok]).statistic), 6)}
        out[f"{dataset}/hp{hp}"] = entry
    return out


def proxy_figure(correlations: dict[str, dict], out: Path) -> Path:
    """Spearman rho of each proxy with test accuracy, one group of bars per (dataset, budget)."""
    settings = sorted(correlations)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.5, 3.5))
        names = list(correlations[settings[0]]) if settings else []
        width = 0.8 / max(len(settings), 1)
        for k, setting in enumerate(settings):
            rho = [correlations[setting][p]["spearman"] for p in names]
            ax.bar(np.arange(len(names)) + k * width, [np.nan if r is None else r for r in rho], width, label=setting)
        ax.set_xticks(np.arange(len(names)) + width * (len(settings) - 1) / 2, names, rotation=30)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(ylim=(-1, 1), ylabel="Spearman rho with test accuracy", title="Training-free proxies at initialisation")
        if settings:
            ax.legend()
        return save_figure(fig, out / "proxy_correlation.png")


def analyse(archs_path: Path, out: Path, proxies_path: Path | None = None) -> dict[str, Path]:
    """Figures and ``metrics.json``; with a proxies table, each setting's entry also holds the
    proxies' rank correlations with test accuracy (``proxies``)."""
    archs = read_table(archs_path, "rerun the aggregate phase (snakemake phase_aggregate)")
    paths = {p.stem: p for p in figures(archs, out)}
    metrics = headline(archs)
    if proxies_path is not None:
        correlations = proxy_correlations(archs, read_table(proxies_path, "rerun the proxies rule"))
        for setting, entry in correlations.items():
            metrics[setting]["proxies"] = entry
        paths["proxy_correlation"] = proxy_figure(correlations, out)
    path = out / "metrics.json"
    write_checked(path, (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    paths["metrics"] = path
    return paths


__all__ = ["analyse", "figures", "headline", "proxy_correlations"]
