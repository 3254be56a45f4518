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
        "nasforge prepare {wildcards.dataset} {params.source} --out results/data > {log} 2>&1"


rule phase_data:
    input:
        expand("results/data/{dataset}/manifest.json", dataset=config["datasets"]),
