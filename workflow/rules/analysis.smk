rule analysis:
    input:
        archs=R.aggregate_table(table="archs"),
        proxies=R.search_file(name="proxies.parquet"),
    output:
        metrics=R.analysis_metrics(),
        figures=[f"{R.analysis()}/{figure}.png" for figure in FIGURES],
    params:
        results=lambda wildcards: R.root,  # the root every declared path above lies under (nasforge.paths)
        config=section("space"),
    log:
        R.log("analysis", "{space}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge analyse --params-json {params.config:q} --results {params.results:q} > {log} 2>&1"


rule phase_analysis:
    input:
        R.analysis_metrics(SPACE),
