# Only summary.json is declared: it is written when every expectation holds, so a
# failure fails the rule (blocking the release) while the report and Data Docs
# beside it stay on disk to be read.
rule validate:
    input:
        plan="results/plan/{space}.parquet",
        epochs="results/bench/{space}/epochs.parquet",
        archs="results/bench/{space}/archs.parquet",
    output:
        "results/validate/{space}/summary.json",
    params:
        config=section("space", "datasets", "train", "validate"),
    log:
        "results/logs/validate/{space}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge validate --params-json {params.config:q} --results results > {log} 2>&1"


rule phase_validate:
    input:
        f"results/validate/{SPACE}/summary.json",
