rule aggregate:
    input:
        plan=R.plan(),
        shards=shard_tables(),
        timing=shard_tables("timing"),
        cost=shard_tables("cost"),
        weights=shard_weights(),
    output:
        **{t: R.aggregate_table(table=t) for t in AGGREGATE_TABLES},
        **({"weights": directory(f"{R.aggregate()}/{WEIGHTS_DIR}")} if TRAIN["save_weights"] else {}),
        **{t: R.measured_table(table=t) for t in MEASURED_TABLES},
        protocols=f"{R.aggregate()}/{PROTOCOLS}",
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets", "train", "plan"),
    log:
        R.log("aggregate", "{space}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge aggregate --params-json {params.config:q} --results {params.results:q} > {log} 2>&1"


rule phase_aggregate:
    input:
        [R.aggregate_table(SPACE, t) for t in AGGREGATE_TABLES],
