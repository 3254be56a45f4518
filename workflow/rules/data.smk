rule prepare:
    output:
        "results/data/{dataset}/manifest.json",
    params:
        source=source_option,
    log:
        "results/logs/prepare/{dataset}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge prepare {wildcards.dataset:q} {params.source:q} --out results/data > {log:q} 2>&1"


rule phase_data:
    input:
        expand("results/data/{dataset}/manifest.json", dataset=config["datasets"]),
