# Proxies need only the data and the plan (they train nothing); the analysis correlates
# them with accuracy. One job per dataset (each holds only its own data), then gathered.
rule proxies_dataset:
    input:
        plan=R.plan(),
        data=R.data_manifest(),
    output:
        R.proxies_part(),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets", "train", "search"),
    threads: TRAIN["threads"]
    resources:
        gpu=1,
    log:
        R.log("search", "{space}.proxies.{dataset}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge proxies --params-json {params.config:q} --results {params.results:q} --dataset {wildcards.dataset:q} > {log} 2>&1"


rule proxies:
    input:
        [R.proxies_part(dataset=d) for d in config["datasets"]],
    output:
        R.search_file(name="proxies.parquet"),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets"),
    log:
        R.log("search", "{space}.proxies"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge proxies --params-json {params.config:q} --results {params.results:q} --gather > {log} 2>&1"


# One job per (algorithm, dataset), side by side; search_suite gathers them. They wait for a
# passing validation: a benchmark that failed it is not searched (and the failure is the one reported).
rule search_algorithm:
    input:
        validation=R.validation_summary(),
        proxies=R.search_file(name="proxies.parquet"),
        archs=R.aggregate_table(table="archs"),
        epochs=R.aggregate_table(table="epochs"),
        times=R.measured_table(table="arch_times"),
    output:
        R.search_run(),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets", "search"),
    log:
        R.log("search", "{space}.{algo}.{dataset}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge search-suite --params-json {params.config:q} --results {params.results:q} --algorithm {wildcards.algo:q}"
        " --dataset {wildcards.dataset:q} > {log} 2>&1"


rule search_suite:
    input:
        runs=[R.search_run(algo=a, dataset=d) for a in config["search"]["algorithms"] for d in config["datasets"]],
        archs=R.aggregate_table(table="archs"),
        times=R.measured_table(table="arch_times"),
    output:
        trajectories=R.search_file(name="trajectories.parquet"),
        summary=R.search_file(name="summary.parquet"),
        markdown=R.search_file(name="summary.md"),
        figure=R.search_file(name="search_trajectories.png"),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets", "search"),
    log:
        R.log("search", "{space}.suite"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge search-suite --params-json {params.config:q} --results {params.results:q} --gather > {log} 2>&1"


rule phase_search:
    input:
        R.search_file(SPACE, "summary.parquet"),
