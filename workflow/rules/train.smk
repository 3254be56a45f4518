rule train_shard:
    input:
        data="results/data/{dataset}/manifest.json",
        plan="results/plan/{space}.parquet",
    output:
        metrics="results/train/{space}/{dataset}/hp{hp}/seed{seed}/shard{k}.parquet",
        timing="results/measured/train/{space}/{dataset}/hp{hp}/seed{seed}/shard{k}.timing.parquet",
        cost="results/measured/train/{space}/{dataset}/hp{hp}/seed{seed}/shard{k}.cost.parquet",
    params:
        shards=config["plan"]["shards"],
        device=TRAIN.get("device", "auto"),
        # Latency depends on the arch and the input, not the seed: measured once, in the first seed's job.
        latency_repeats=lambda w: TRAIN.get("latency_repeats", 3) if int(w.seed) == TRAIN["seeds"][0] else 0,
        engine=TRAIN.get("engine", "reference"),
        protocol=json.dumps(TRAIN.get("protocol") or {}, sort_keys=True),
    threads: TRAIN.get("threads", 1)
    resources:
        gpu=1,
    log:
        "results/logs/train/{space}/{dataset}/hp{hp}/seed{seed}/shard{k}.log",
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge train-shard --space {wildcards.space} --dataset {wildcards.dataset} --hp {wildcards.hp}"
        " --seed {wildcards.seed} --shard {wildcards.k} --of {params.shards} --plan {input.plan}"
        " --data results/data --out results/train --measured-out results/measured/train"
        " --device {params.device} --threads {threads} --latency-repeats {params.latency_repeats}"
        " --protocol-json {params.protocol:q} --engine {params.engine} > {log} 2>&1"


rule phase_train:
    input:
        shard_tables(),
