rule release:
    input:
        plan=f"results/plan/{SPACE}.parquet",
        tables=expand("results/bench/{space}/{table}.parquet", space=SPACE, table=["epochs", "archs"]),
        measured=expand("results/measured/bench/{space}/{table}.parquet", space=SPACE, table=["times", "latency", "arch_times"]),
        validation=f"results/validate/{SPACE}/summary.json",
        metrics=f"results/figures/{SPACE}/metrics.json",
        search=expand("results/search/{space}/{file}", space=SPACE,
                      file=["proxies.parquet", "trajectories.parquet", "summary.parquet", "summary.md",
                            "search_trajectories.png"]),
    output:
        release_manifest(),
    params:
        config=json.dumps(config, sort_keys=True),
    log:
        f"results/logs/release/{SPACE}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge release build --params-json {params.config:q} --results results > {log} 2>&1"


rule phase_release:
    input:
        release_manifest(),
