# Weight-sharing searches: one job per (algorithm, dataset, seed), needing only the data (a search
# trains its own supernet); each checkpoints every epoch, so a killed job resumes where it stopped.
rule oneshot:
    input:
        data=R.data_manifest(),
    output:
        run=R.oneshot_run(),
        timing=R.oneshot_run(measured=True),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("datasets", "train", "oneshot"),
    threads: TRAIN["threads"]
    resources:
        gpu=1,
    log:
        R.log("oneshot", "{method}.{dataset}.seed{seed}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge oneshot --params-json {params.config:q} --results {params.results:q} --algorithm {wildcards.method:q}"
        " --dataset {wildcards.dataset:q} --seed {wildcards.seed} > {log} 2>&1"


# Its train jobs (one per space, budget and seed, each on TRAIN["threads"]) run side by side.
SCORE_JOBS = max(1, min(workflow.cores // TRAIN["threads"], 2 * len(TRAIN["budgets"]) * len(TRAIN["seeds"])))


# Every derived arch scored on the benchmark; the archs it lacks are trained here under its protocol
# (so this job, like a train job, asks for a GPU). Waits for a passing validation, as the search phase does.
rule oneshot_score:
    input:
        runs=oneshot_runs(),
        timings=oneshot_runs(measured=True),
        validation=R.validation_summary(SPACE),
        epochs=R.aggregate_table(SPACE, "epochs"),
        protocols=f"{R.aggregate(SPACE)}/{PROTOCOLS}",
        search=R.search_file(SPACE, "summary.parquet"),
        data=[R.data_manifest(d) for d in config["datasets"]],
    output:
        [R.oneshot_file(f) for f in ONESHOT_FILES],
        seconds=f"{R.root}/measured/oneshot/seconds.parquet",
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets", "train", "oneshot"),
        jobs=SCORE_JOBS,
    threads: SCORE_JOBS * TRAIN["threads"]
    resources:
        gpu=1,
    log:
        R.log("oneshot", "score"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge oneshot --params-json {params.config:q} --results {params.results:q} --score --jobs {params.jobs} > {log} 2>&1"


rule phase_oneshot:
    input:
        oneshot_files(),
