rule aggregate:
    input:
        plan="results/plan/{space}.parquet",
        shards=shard_tables(),
        timing=shard_tables("timing"),
        cost=shard_tables("cost"),
    output:
        epochs="results/bench/{space}/epochs.parquet",
        archs="results/bench/{space}/archs.parquet",
        times="results/measured/bench/{space}/times.parquet",
        latency="results/measured/bench/{space}/latency.parquet",
        arch_times="results/measured/bench/{space}/arch_times.parquet",
    params:
        config=section("space", "datasets", "train", "plan"),
    log:
        "results/logs/aggregate/{space}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge aggregate --params-json {params.config:q} --results results > {log} 2>&1"


rule phase_aggregate:
    input:
        expand("results/bench/{space}/{table}.parquet", space=SPACE, table=["epochs", "archs"]),
