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
        ENV
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
        ENV
    script:
        "../scripts/expert_data.py"


rule world_seed:
    input:
        unpack(seed_inputs),
    output:
        model=PATHS.seed_model(),
    params:
        config=seed_cfg,
    threads: rule_threads(config, "world_seed", config["world"]["seed_training"]["threads"] if TOY_SEED else 1)
    log:
        PATHS.log("world_seed.log"),
    benchmark:
        PATHS.benchmark("world_seed.tsv")
    resources:
        # An imported M0 is only copied or converted: no GPU.
        **rule_resources(config, "world_seed", gpu=TOY_SEED),
    conda:
        ENV
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
    threads: rule_threads(config, "world_expert", config["threads"])
    log:
        PATHS.log("world_expert_{expert}.log"),
    benchmark:
        PATHS.benchmark("world_expert_{expert}.tsv")
    resources:
        mem_mb=rule_resources(config, "world_expert")["mem_mb"],
        runtime=rule_resources(config, "world_expert")["runtime"],
        # An imported expert is only copied or converted: no GPU.
        gpu=lambda wc: rule_resources(config, "world_expert", gpu="model" not in expert_entry(wc.expert))["gpu"],
    conda:
        ENV
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
        **rule_resources(config, "task_vector", mem_mb=1000),
    conda:
        ENV
    script:
        "../scripts/task_vector.py"


# The upper bound: M0 fine-tuned on all experts' data at once (world.multitask).
rule world_multitask:
    input:
        data=[PATHS.data(f"expert_{e}") for e in EXPERTS],
        seed=PATHS.seed_model(),
        prompt=config["eval"]["prompt"],
    output:
        model=PATHS.multitask_model(),
    params:
        config=cfg("seed", "threads", "device", "world.expert_training", "world.experts"),
    threads: rule_threads(config, "world_multitask", config["threads"])
    log:
        PATHS.log("world_multitask.log"),
    benchmark:
        PATHS.benchmark("world_multitask.tsv")
    resources:
        **rule_resources(config, "world_multitask"),
    conda:
        ENV
    script:
        "../scripts/world_multitask.py"


rule world_report:
    input:
        unpack(lambda wc: world_files()),
        experts=[PATHS.expert_model(e) for e in EXPERTS],
        multitask=[PATHS.multitask_model()] if MULTITASK else [],
        dev=PATHS.data("dev"),
        prompt=config["eval"]["prompt"],
    output:
        json=PATHS.world_report("json"),
        md=PATHS.world_report("md"),
    params:
        config=engine_cfg("threads", "device", "eval", "world.report"),
    threads: rule_threads(config, "world_report", config["threads"])
    log:
        PATHS.log("world_report.log"),
    benchmark:
        PATHS.benchmark("world_report.tsv")
    resources:
        **rule_resources(config, "world_report"),
    conda:
        SCORE_ENV
    script:
        "../scripts/world_report.py"
