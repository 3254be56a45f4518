# Proxies need only the data and the plan (they train nothing); the analysis correlates
# them with accuracy. One job per dataset (each holds only its own data), then gathered.
rule proxies_dataset:
    input:
        plan="results/plan/{space}.parquet",
        data="results/data/{dataset}/manifest.json",
    output:
        "results/search/{space}/proxies/{dataset}.parquet",
    params:
        config=section("space", "datasets", "train", "search"),
    threads: TRAIN.get("threads", 1)
    resources:
        gpu=1,
    log:
        "results/logs/search/{space}.proxies.{dataset}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge proxies --params-json {params.config:q} --results results --dataset {wildcards.dataset:q} > {log} 2>&1"


rule proxies:
    input:
        expand("results/search/{{space}}/proxies/{dataset}.parquet", dataset=config["datasets"]),
    output:
        "results/search/{space}/proxies.parquet",
    params:
        config=section("space", "datasets"),
    log:
        "results/logs/search/{space}.proxies.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge proxies --params-json {params.config:q} --results results --gather > {log} 2>&1"


# One job per (algorithm, dataset), side by side; search_suite gathers them. They wait for a
# passing validation: a benchmark that failed it is not searched (and the failure is the one reported).
rule search_algorithm:
    input:
        validation="results/validate/{space}/summary.json",
        proxies="results/search/{space}/proxies.parquet",
        archs="results/bench/{space}/archs.parquet",
        epochs="results/bench/{space}/epochs.parquet",
        times="results/measured/bench/{space}/arch_times.parquet",
    output:
        "results/search/{space}/runs/{algo}/{dataset}.parquet",
    params:
        config=section("space", "datasets", "search"),
    log:
        "results/logs/search/{space}.{algo}.{dataset}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge search-suite --params-json {params.config:q} --results results --algorithm {wildcards.algo:q}"
        " --dataset {wildcards.dataset:q} > {log} 2>&1"


rule search_suite:
    input:
        runs=expand("results/search/{{space}}/runs/{algo}/{dataset}.parquet", algo=config["search"]["algorithms"],
                    dataset=config["datasets"]),
        archs="results/bench/{space}/archs.parquet",
        times="results/measured/bench/{space}/arch_times.parquet",
    output:
        trajectories="results/search/{space}/trajectories.parquet",
        summary="results/search/{space}/summary.parquet",
        markdown="results/search/{space}/summary.md",
        figure="results/search/{space}/search_trajectories.png",
    params:
        config=section("space", "datasets", "search"),
    log:
        "results/logs/search/{space}.suite.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge search-suite --params-json {params.config:q} --results results --gather > {log} 2>&1"


rule phase_search:
    input:
        f"results/search/{SPACE}/summary.parquet",
