"""The oneshot phase: NATS-Bench's weight-sharing NAS algorithms, run as pipeline jobs and scored on
the benchmark.

- ``tss_supernet``, ``sss_supernet``: the two search spaces' supernets, built from the discrete
  networks' own modules so that a supernet restricted to an arch is that arch's network;
- ``controller``: ENAS's LSTM controller;
- ``algorithms``: the nine searches (darts-v1, darts-v2, gdas, setn, random, enas; tas,
  mask_gumbel, mask_rl), step for step as xautodl's ``exps/NATS-algos`` run them;
- ``darts_pt``: perturbation-based selection for DARTS supernets;
- ``search``: one job (algorithm, dataset, seed), checkpointed every epoch;
- ``score``: every derived arch given its true accuracy (looked up, or trained under the
  release's protocol), the results table, figure and data-card section.
"""
