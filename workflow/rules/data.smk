rule data:
    output:
        R.data_manifest(),
    params:
        source=source_option,
        parent=lambda w, output: str(Path(output[0]).parent.parent),  # prepare writes PARENT/DATASET/
    log:
        R.log("data", "{dataset}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge prepare {wildcards.dataset:q} {params.source:q} --out {params.parent:q} > {log:q} 2>&1"


rule phase_data:
    input:
        [R.data_manifest(d) for d in config["datasets"]],
