# Proxies need only the data and the plan (they train nothing); the analysis correlates
# them with accuracy. The suite runs every configured NAS algorithm on the aggregated tables.
rule proxies:
    input:
        plan="results/plan/{space}.parquet",
        data=expand("results/data/{dataset}/manifest.json", dataset=config["datasets"]),
    output:
        "results/search/{space}/proxies.parquet",
    params:
        config=section("space", "datasets", "train", "search"),
    threads: TRAIN.get("threads", 1)
    resources:
        gpu=1,
    log:
        "results/logs/search/{space}.proxies.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge proxies --params-json {params.config:q} --results results > {log} 2>&1"


rule search_suite:
    input:
        proxies="results/search/{space}/proxies.parquet",
        archs="results/bench/{space}/archs.parquet",
        epochs="results/bench/{space}/epochs.parquet",
        times="results/measured/bench/{space}/arch_times.parquet",
    output:
        trajectories="results/search/{space}/trajectories.parquet",
        summary="results/search/{space}/summary.parquet",
        markdown="results/search/{space}/summary.md",
        figure="results/search/{space}/search_trajectories.png",
    params:
        config=section("space", "search"),
    log:
        "results/logs/search/{space}.suite.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge search-suite --params-json {params.config:q} --results results > {log} 2>&1"


rule phase_search:
    input:
        f"results/search/{SPACE}/summary.parquet",
