# The world: data -> M0 -> experts -> task vectors -> report. M0 and each expert are trained here
# (the toy world, skill experts) or imported from existing checkpoints (hub ids, local folders).


rule world_split:
    input:
        unpack(split_inputs),
    output:
        rows=PATHS.data("{split}"),
    params:
        config=split_cfg,
    log:
        PATHS.log("world_split_{split}.log"),
    benchmark:
        PATHS.benchmark("world_split_{split}.tsv")
    resources:
        mem_mb=1000,
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_split.py"


rule expert_data:
    output:
        rows=PATHS.data("expert_{expert}"),
    params:
        config=expert_data_cfg,
    log:
        PATHS.log("expert_data_{expert}.log"),
    benchmark:
        PATHS.benchmark("expert_data_{expert}.tsv")
    resources:
        mem_mb=1000,
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/expert_data.py"


rule world_seed:
    input:
        unpack(seed_inputs),
    output:
        model=PATHS.seed_model(),
    params:
        config=seed_cfg,
    threads: config["world"]["seed_training"]["threads"] if TOY_SEED else 1
    log:
        PATHS.log("world_seed.log"),
    benchmark:
        PATHS.benchmark("world_seed.tsv")
    resources:
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
        gpu=GPUS if TOY_SEED else 0,
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_seed.py"


rule world_expert:
    input:
        unpack(expert_inputs),
    output:
        model=PATHS.expert_model("{expert}"),
    params:
        config=expert_cfg,
        family=expert_family,
    threads: config["threads"]
    log:
        PATHS.log("world_expert_{expert}.log"),
    benchmark:
        PATHS.benchmark("world_expert_{expert}.tsv")
    resources:
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
        gpu=lambda wc: 0 if "model" in expert_entry(wc.expert) else GPUS,
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_expert.py"


rule task_vector:
    input:
        seed=PATHS.seed_model(),
        expert=PATHS.expert_model("{expert}"),
    output:
        task_vector=PATHS.task_vector("{expert}"),
    params:
        config=cfg("merge"),
    log:
        PATHS.log("task_vector_{expert}.log"),
    benchmark:
        PATHS.benchmark("task_vector_{expert}.tsv")
    resources:
        # Streamed one parameter at a time: memory is a few parameters, not a model.
        mem_mb=1000,
        runtime=config["resources"]["runtime"],
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/task_vector.py"


rule world_report:
    input:
        unpack(lambda wc: world_files()),
        experts=[PATHS.expert_model(e) for e in EXPERTS],
        dev=PATHS.data("dev"),
        prompt=config["eval"]["prompt"],
    output:
        json=PATHS.world_report("json"),
        md=PATHS.world_report("md"),
    params:
        config=cfg("threads", "device", "eval", "world.report"),
    threads: config["threads"]
    log:
        PATHS.log("world_report.log"),
    benchmark:
        PATHS.benchmark("world_report.tsv")
    resources:
        mem_mb=config["resources"]["mem_mb"],
        runtime=config["resources"]["runtime"],
        gpu=GPUS,
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_report.py"
