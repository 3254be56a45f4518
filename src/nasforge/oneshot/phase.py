"""The oneshot phase's two steps as the pipeline runs them: a search job from the configuration, and
the scoring of all of them (``nasforge oneshot``)."""

from __future__ import annotations

from pathlib import Path

from nasforge.oneshot.algorithms import Settings, check_algorithm, space_of
from nasforge.oneshot.darts_pt import PtSettings
from nasforge.oneshot.search import SearchJob, run_search
from nasforge.paths import Results
from nasforge.protocol import Protocol


def search_job(params: dict, results: Results, algorithm: str, dataset: str, seed: int) -> SearchJob:
    """The job ``params["oneshot"]`` describes for one (algorithm, dataset, seed), at the pipeline's paths."""
    o = params["oneshot"]
    check_algorithm(algorithm)  # before space_of and the settings look it up
    settings = Settings(channels=o["channels"], cells_per_stage=o["cells_per_stage"], tau_max=o["tau_max"],
                        tau_min=o["tau_min"], candidates=o["candidates"], controller_steps=o["controller_steps"],
                        controller_aggregate=o["controller_aggregate"])
    pt = (PtSettings(finetune_steps=o["pt_finetune_steps"], eval_batches=o["pt_eval_batches"])
          if o["darts_pt"] and algorithm.startswith("darts") else None)
    return SearchJob(
        algorithm=algorithm, dataset=dataset, seed=seed, epochs=o["epochs"][space_of(algorithm)],
        data=Path(results.data(dataset)), out=Path(results.oneshot_run(algorithm, dataset, seed)),
        timing_out=Path(results.oneshot_run(algorithm, dataset, seed, measured=True)),
        protocol=Protocol.weight_sharing().with_overrides(o["protocol"]), steps_per_epoch=o["steps_per_epoch"],
        eval_batch_size=o["eval_batch_size"], settings=settings, arch_optimizer=o["arch_optimizer"].get(algorithm),
        pt=pt, device=params["train"]["device"], threads=params["train"]["threads"])


def run_oneshot_job(params: dict, results: Results, algorithm: str, dataset: str, seed: int) -> Path:
    return run_search(search_job(params, results, algorithm, dataset, seed))


def run_oneshot_score(params: dict, results: Results, jobs: int = 1) -> dict[str, Path]:
    """With no search configured this writes the phase's tables empty: DVC's stage declares them."""
    from nasforge.oneshot.score import score

    return score(params, results, jobs)
