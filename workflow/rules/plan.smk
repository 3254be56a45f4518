rule plan:
    output:
        R.plan(),
    params:
        config=section("space", "plan"),
    log:
        R.log("plan", "{space}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge plan --params-json {params.config:q} --out {output} > {log} 2>&1"


rule phase_plan:
    input:
        R.plan(SPACE),
