"""BOHB (Falkner et al. 2018) on a release: optuna's TPE sampler with its Hyperband pruner.

Optuna is the well-kept library here: ``TPESampler`` models good and bad
configurations as BOHB's kernel density estimates do, and ``HyperbandPruner``
runs Hyperband's brackets of successive halving over epochs. NATS-Bench ran
BOHB through HpBandSter with epochs as the budget; this is that algorithm
with optuna's implementation of its two halves.

A trial is one arch (a categorical choice per decision, projected onto the
release's held archs), trained epoch by epoch: after each epoch the time of
that epoch and one evaluation is charged and the validation accuracy of that
epoch (of the trial's seed) is reported, so a pruned trial costs only the
epochs it ran. Only a trial trained for the whole budget can become the
incumbent, as in BOHB, where the answer comes from the largest budget.

Reproducible by seed: the sampler is seeded from the run's generator, and
the study is named after it, because Hyperband assigns trials to brackets by
a hash of the study name (optuna's default name holds a random UUID).
"""

from __future__ import annotations

import math

from nasforge.search.simulation import SimulatedBench


def bohb(env: SimulatedBench, reduction_factor: int = 3) -> None:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = env.rng.randrange(2**31)
    study = optuna.create_study(
        study_name=f"nasforge-bohb-{seed}", direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=env.epochs,
                                              reduction_factor=reduction_factor),
    )
    choices = list(range(env.choices))
    for _ in range(env.max_evaluations):  # pruned trials record nothing, so bound the trials themselves
        if env.exhausted:
            break
        trial = study.ask()
        code = tuple(trial.suggest_categorical(f"decision{k}", choices) for k in range(env.codes.shape[1]))
        index = env.project(code)
        curve = _valid_curve(env, index)
        state = None
        for epoch, valid in enumerate(curve, start=1):
            env.charge(index, 1)  # one more epoch, and the evaluation that reports it
            if epoch == len(curve):
                break
            trial.report(_finite(valid), epoch)
            if env.exhausted or trial.should_prune():
                state = TrialState.PRUNED
                break
        if state is TrialState.PRUNED:
            study.tell(trial, state=state)
            continue
        final = curve[-1]
        env.record(index, final)
        if final is None or math.isnan(final):
            study.tell(trial, state=TrialState.FAIL)  # a diverged run teaches TPE nothing usable
        else:
            study.tell(trial, final)


def _valid_curve(env: SimulatedBench, index: int) -> list[float | None]:
    """Validation accuracy after each epoch of one drawn seed (the final one only for a 1-epoch budget)."""
    seed = env.draw_seed(index)
    if env.epochs == 1:
        return [env.bench.final(index, env.dataset, env.hp, seed)["valid_acc"]]
    return env.bench.curves(env.dataset, env.hp)[(index, seed)]  # read once per (dataset, hp), then kept


def _finite(value: float | None) -> float:
    """Hyperband ranks reports; a diverged epoch ranks last."""
    return -1.0 if value is None or math.isnan(value) else value
