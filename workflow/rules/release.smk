rule release:
    input:
        plan=R.plan(SPACE),
        tables=[R.aggregate_table(SPACE, t) for t in AGGREGATE_TABLES],
        protocols=f"{R.aggregate(SPACE)}/{PROTOCOLS}",
        measured=[R.measured_table(SPACE, t) for t in MEASURED_TABLES],
        validation=R.validation_summary(SPACE),
        metrics=R.analysis_metrics(SPACE),
        search=[R.search_file(SPACE, f) for f in SEARCH_FILES],
        oneshot=oneshot_files(),
        weights=[f"{R.aggregate(SPACE)}/{WEIGHTS_DIR}"] if TRAIN["save_weights"] else [],
    output:
        release_manifest(),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=json.dumps(config, sort_keys=True),
    log:
        R.log("release", SPACE),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge release build --params-json {params.config:q} --results {params.results:q} > {log} 2>&1"


rule phase_release:
    input:
        release_manifest(),
