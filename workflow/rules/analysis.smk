rule analyse:
    input:
        archs="results/bench/{space}/archs.parquet",
        proxies="results/search/{space}/proxies.parquet",
    output:
        metrics="results/figures/{space}/metrics.json",
        figures=expand(
            "results/figures/{{space}}/{figure}.png",
            figure=["accuracy_distribution", "params_vs_accuracy", "valid_vs_test", "rank_correlation", "seed_agreement",
                    "proxy_correlation"],
        ),
    params:
        config=section("space"),
    log:
        "results/logs/analysis/{space}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge analyse --params-json {params.config:q} --results results > {log} 2>&1"


rule phase_analysis:
    input:
        f"results/figures/{SPACE}/metrics.json",
