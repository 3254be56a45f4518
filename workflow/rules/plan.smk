rule plan:
    output:
        "results/plan/{space}.parquet",
    params:
        config=section("space", "plan"),
    log:
        "results/logs/plan/{space}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge plan --params-json {params.config:q} --out {output} > {log} 2>&1"


rule phase_plan:
    input:
        f"results/plan/{SPACE}.parquet",
