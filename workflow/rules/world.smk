# The embedded toy world: data -> M0 -> experts -> task vectors -> report.


rule world_data:
    output:
        seed_train=PATHS.data("seed_train"),
        dev=PATHS.data("dev"),
        test=PATHS.data("test"),
        experts=[PATHS.data(f"expert_{e}") for e in EXPERTS + TRANSFER],
    params:
        world=config["world"],
        seed=config["seed"],
    log:
        PATHS.log("world_data.log"),
    benchmark:
        PATHS.benchmark("world_data.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_data.py"


rule world_seed:
    input:
        data=PATHS.data("seed_train"),
        prompt=config["eval"]["prompt"],
    output:
        model=PATHS.seed_model(),
    params:
        world=world_cfg("model", "seed_training"),
        seed=config["seed"],
    threads: config["world"]["seed_training"]["threads"]
    log:
        PATHS.log("world_seed.log"),
    benchmark:
        PATHS.benchmark("world_seed.tsv")
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
        world=expert_cfg,
        seed=config["seed"],
    threads: config["threads"]
    log:
        PATHS.log("world_expert_{expert}.log"),
    benchmark:
        PATHS.benchmark("world_expert_{expert}.tsv")
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
        config=cfg("threads", "eval", "sandbox", "world.report"),
        benchmarks=PATHS.benchmark(""),
    threads: config["threads"]
    log:
        PATHS.log("world_report.log"),
    benchmark:
        PATHS.benchmark("world_report.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/world_report.py"
