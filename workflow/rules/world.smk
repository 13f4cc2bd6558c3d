# The embedded toy world: data -> M0 -> experts -> task vectors -> report.


rule world_split:
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
        data=PATHS.data("seed_train"),
        prompt=config["eval"]["prompt"],
    output:
        model=PATHS.seed_model(),
    params:
        config=cfg("seed", "world.model", "world.seed_training"),
    threads: config["world"]["seed_training"]["threads"]
    log:
        PATHS.log("world_seed.log"),
    benchmark:
        PATHS.benchmark("world_seed.tsv")
    resources:
        mem_mb=2000,
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_seed.py"


rule world_expert:
    input:
        data=PATHS.data("expert_{expert}"),
        seed=PATHS.seed_model(),
        prompt=config["eval"]["prompt"],
    output:
        model=PATHS.expert_model("{expert}"),
    params:
        config=expert_cfg,
    threads: config["threads"]
    log:
        PATHS.log("world_expert_{expert}.log"),
    benchmark:
        PATHS.benchmark("world_expert_{expert}.tsv")
    resources:
        mem_mb=2000,
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
        include=config["merge"]["include"],
    log:
        PATHS.log("task_vector_{expert}.log"),
    benchmark:
        PATHS.benchmark("task_vector_{expert}.tsv")
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
        config=cfg("threads", "eval", "world.report"),
    threads: config["threads"]
    log:
        PATHS.log("world_report.log"),
    benchmark:
        PATHS.benchmark("world_report.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_report.py"
