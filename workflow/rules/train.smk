rule train:
    input:
        data=R.data_manifest(),
        plan=R.plan(),
    output:
        metrics=R.shard(),
        timing=R.shard(kind="timing"),
        cost=R.shard(kind="cost"),
        # train.save_weights: each arch's trained weights ({arch_index}.safetensors)
        **({"weights": directory(R.shard_weights())} if TRAIN["save_weights"] else {}),
    params:
        shards=config["plan"]["shards"],
        device=TRAIN["device"],
        # Latency depends on the arch and the input, not the seed: measured once, in the first seed's job.
        latency_repeats=lambda w: TRAIN["latency_repeats"] if int(w.seed) == TRAIN["seeds"][0] else 0,
        engine=TRAIN["engine"],
        protocol=json.dumps(TRAIN["protocol"], sort_keys=True),
        weights=lambda w, output: f" --weights-out {shlex.quote(output.weights)}" if TRAIN["save_weights"] else "",
    threads: TRAIN["threads"]
    resources:
        gpu=1,
    log:
        R.log("train", "{space}/{dataset}/hp{hp}/seed{seed}/shard{k}"),
    conda:
        "../envs/nasforge.yaml"
    shell:
        "nasforge train-shard --space {wildcards.space} --dataset {wildcards.dataset} --hp {wildcards.hp}"
        " --seed {wildcards.seed} --shard {wildcards.k} --of {params.shards} --plan {input.plan}"
        " --data {input.data} --out {output.metrics} --timing-out {output.timing} --cost-out {output.cost}"
        " --device {params.device} --threads {threads} --latency-repeats {params.latency_repeats}"
        " --protocol-json {params.protocol:q} --engine {params.engine}{params.weights} > {log} 2>&1"


rule phase_train:
    input:
        shard_tables(),
