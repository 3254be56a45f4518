# Only summary.json is declared: it is written when every expectation holds, so a
# failure fails the rule (blocking the release) while the report and Data Docs
# beside it stay on disk to be read.
rule validate:
    input:
        plan=R.plan(),
        epochs=R.aggregate_table(table="epochs"),
        archs=R.aggregate_table(table="archs"),
    output:
        R.validation_summary(),
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space", "datasets", "train", "validate"),
    log:
        R.log("validate", "{space}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge validate --params-json {params.config:q} --results {params.results:q} > {log} 2>&1"


rule phase_validate:
    input:
        R.validation_summary(SPACE),
