# The Self-Developing loop. Iteration 0 is the initial factory (converted, optionally warmed up);
# iteration i of a run (arm x seed) samples from the factory of i-1 (input function `previous_factory`).
# Arm `dpo` is the paper's loop; arm `nodpo` samples on the same schedule from the initial factory;
# `evolve` prompts with parents from the run's archive (frozen factory), `evolve_dpo` adds DPO.
# The loop's chain is the run's critical path: its rules go first (`priority`), and the baselines,
# single models and the other arm fill the free core around it.


rule factory_initial:
    input:
        source=factory_source,
    output:
        model=PATHS.factory_initial(),
        train_log=PATHS.train_log(PATHS.factory_initial()),
    params:
        config=cfg("factory.model"),
    priority: 10
    log:
        PATHS.log("factory_initial.log"),
    benchmark:
        PATHS.benchmark("factory_initial.tsv")
    resources:
        **rule_resources(config, "factory_initial"),
    conda:
        ENV
    script:
        "../scripts/factory_initial.py"


rule factory_warmup:
    input:
        model=PATHS.factory_initial(),
        prompt=config["factory"]["prompt"],
    output:
        model=PATHS.factory_warmup(),
        train_log=PATHS.train_log(PATHS.factory_warmup()),
    params:
        config=engine_cfg("seed", "device", "loop.threads", "factory.prompt", "factory.prompt_format", "factory.warmup"),
    threads: rule_threads(config, "factory_warmup", config["loop"]["threads"])
    priority: 10
    log:
        PATHS.log("factory_warmup.log"),
    benchmark:
        PATHS.benchmark("factory_warmup.tsv")
    resources:
        **rule_resources(config, "factory_warmup"),
    conda:
        ENV
    script:
        "../scripts/factory_warmup.py"


rule sample:
    input:
        factory=previous_factory,
        prompt=config["factory"]["prompt"],
        parents=parent_scores,
    output:
        candidates=PATHS.candidates("{arm}", "{seed}", "{it}"),
    params:
        config=sample_cfg,
    threads: rule_threads(config, "sample", config["threads"])
    priority: 10
    log:
        PATHS.log("sample_{arm}_s{seed}_it{it}.log"),
    benchmark:
        PATHS.benchmark("sample_{arm}_s{seed}_it{it}.tsv")
    resources:
        **rule_resources(config, "sample"),
    conda:
        SAMPLE_ENV
    script:
        "../scripts/sample.py"


rule filter:
    input:
        candidates=PATHS.candidates("{arm}", "{seed}", "{it}"),
        earlier=earlier_scores,
        prompt=config["factory"]["prompt"],
        # M0's config: its depth is what the probe's layer sweep covers.
        seed=PATHS.seed_model(),
    output:
        executable=PATHS.executable("{arm}", "{seed}", "{it}"),
    params:
        config=cfg("sandbox", "world.experts", "factory.prompt"),
    priority: 10
    log:
        PATHS.log("filter_{arm}_s{seed}_it{it}.log"),
    benchmark:
        PATHS.benchmark("filter_{arm}_s{seed}_it{it}.tsv")
    conda:
        ENV
    script:
        "../scripts/filter.py"


rule score:
    input:
        unpack(lambda wc: world_files()),
        candidates=PATHS.candidates("{arm}", "{seed}", "{it}"),
        executable=PATHS.executable("{arm}", "{seed}", "{it}"),
        earlier=earlier_scores,
        rows=PATHS.data("dev"),
        prompt=config["eval"]["prompt"],
    output:
        scores=PATHS.scores("{arm}", "{seed}", "{it}") if SHARDS == 1 else PATHS.score_shard("{arm}", "{seed}", "{it}", "{shard}", "{shards}"),
    params:
        config=engine_cfg("threads", "device", "eval", "sandbox", "seed", "loop.racing", "loop.p_w",
                          "loop.min_chosen", "loop.earlier_top", "study.top_k"),
    threads: rule_threads(config, "score", config["threads"])
    priority: 10
    log:
        PATHS.log("score_{arm}_s{seed}_it{it}.log") if SHARDS == 1 else PATHS.log("score_{arm}_s{seed}_it{it}_shard{shard}of{shards}.log"),
    benchmark:
        PATHS.benchmark("score_{arm}_s{seed}_it{it}.tsv") if SHARDS == 1 else PATHS.benchmark("score_{arm}_s{seed}_it{it}_shard{shard}of{shards}.tsv")
    resources:
        **rule_resources(config, "score"),
    conda:
        SCORE_ENV
    script:
        "../scripts/score.py"


if SHARDS > 1:

    # eval.shards > 1: each `score` job above scores one shard (its own engine and GPU); this
    # writes the table one job would have written, and holds no model.
    rule score_gather:
        input:
            candidates=PATHS.candidates("{arm}", "{seed}", "{it}"),
            executable=PATHS.executable("{arm}", "{seed}", "{it}"),
            earlier=earlier_scores,
            shards=score_shards,
        output:
            scores=PATHS.scores("{arm}", "{seed}", "{it}"),
        params:
            config=engine_cfg("threads", "device", "eval", "sandbox"),
        priority: 10
        log:
            PATHS.log("score_{arm}_s{seed}_it{it}.log"),
        benchmark:
            PATHS.benchmark("score_{arm}_s{seed}_it{it}.tsv")
        conda:
            ENV
        script:
            "../scripts/score_gather.py"


rule pairs:
    wildcard_constraints:
        arm="|".join(DPO_ARMS),
    input:
        scores=PATHS.scores("{arm}", "{seed}", "{it}"),
        earlier=earlier_scores,
        prompt=config["factory"]["prompt"],
    output:
        pairs=PATHS.pairs("{arm}", "{seed}", "{it}"),
    params:
        config=cfg("seed", "factory.prompt", "loop.p_w", "loop.p_l", "loop.min_chosen", "loop.min_rejected", "loop.earlier_top", "loop.max_pairs"),
    priority: 10
    log:
        PATHS.log("pairs_{arm}_s{seed}_it{it}.log"),
    benchmark:
        PATHS.benchmark("pairs_{arm}_s{seed}_it{it}.tsv")
    conda:
        ENV
    script:
        "../scripts/pairs.py"


rule dpo:
    wildcard_constraints:
        arm="|".join(DPO_ARMS),
    input:
        factory=previous_factory,
        pairs=PATHS.pairs("{arm}", "{seed}", "{it}"),
    output:
        model=PATHS.factory("{arm}", "{seed}", "{it}"),
        train_log=PATHS.train_log(PATHS.factory("{arm}", "{seed}", "{it}")),
    params:
        config=engine_cfg("seed", "device", "loop.threads", "factory.prompt_format", "dpo"),
    threads: rule_threads(config, "dpo", config["loop"]["threads"])
    priority: 10
    log:
        PATHS.log("dpo_{arm}_s{seed}_it{it}.log"),
    benchmark:
        PATHS.benchmark("dpo_{arm}_s{seed}_it{it}.tsv")
    resources:
        **rule_resources(config, "dpo"),
    conda:
        ENV
    script:
        "../scripts/dpo.py"


# After the last iteration: the run's best programs with their scale tuned on dev (loop.tune).
rule tune:
    input:
        unpack(lambda wc: world_files()),
        scores=lambda wc: run_scores(wc.arm, int(wc.seed)),
        rows=PATHS.data("dev"),
        prompt=config["eval"]["prompt"],
    output:
        tuned=PATHS.tuned("{arm}", "{seed}"),
    params:
        config=engine_cfg("seed", "threads", "device", "eval", "sandbox", "world.experts", "loop.racing", "loop.tune"),
    threads: rule_threads(config, "tune", config["threads"])
    log:
        PATHS.log("tune_{arm}_s{seed}.log"),
    benchmark:
        PATHS.benchmark("tune_{arm}_s{seed}.tsv")
    resources:
        **rule_resources(config, "tune"),
    conda:
        SCORE_ENV
    script:
        "../scripts/tune.py"


rule run_summary:
    input:
        iterations=lambda wc: [f for it in ITERATIONS for f in iteration_files(wc.arm, int(wc.seed), it).values()],
        world_report=PATHS.world_report("json"),
    output:
        json=PATHS.run_summary("{arm}", "{seed}", "json"),
        md=PATHS.run_summary("{arm}", "{seed}", "md"),
    params:
        iterations=lambda wc: [iteration_files(wc.arm, int(wc.seed), it) for it in ITERATIONS],
    log:
        PATHS.log("summary_{arm}_s{seed}.log"),
    benchmark:
        PATHS.benchmark("summary_{arm}_s{seed}.tsv")
    conda:
        ENV
    script:
        "../scripts/summary.py"
