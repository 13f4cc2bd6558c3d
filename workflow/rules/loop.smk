# The Self-Developing loop. Iteration 0 is the initial factory (converted, optionally warmed up);
# iteration i samples from the factory of i-1 (input function `previous_factory`).


rule factory_initial:
    output:
        model=PATHS.factory_initial(),
    params:
        config=cfg("factory.model"),
    log:
        PATHS.log("factory_initial.log"),
    benchmark:
        PATHS.benchmark("factory_initial.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/factory_initial.py"


rule factory_warmup:
    input:
        model=PATHS.factory_initial(),
        prompt=config["factory"]["prompt"],
    output:
        model=PATHS.factory_warmup(),
    params:
        config=cfg("seed", "factory.prompt", "factory.warmup"),
    threads: config["loop"]["threads"]
    log:
        PATHS.log("factory_warmup.log"),
    benchmark:
        PATHS.benchmark("factory_warmup.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/factory_warmup.py"


rule sample:
    input:
        factory=previous_factory,
        prompt=config["factory"]["prompt"],
    output:
        candidates=PATHS.candidates("{it}"),
    params:
        config=cfg("seed", "factory.prompt", "factory.dtype", "loop.n_samples", "loop.t1", "loop.beta", "loop.top_p", "loop.max_new_tokens", "loop.batch_size"),
    threads: config["loop"]["threads"]
    log:
        PATHS.log("sample_it{it}.log"),
    benchmark:
        PATHS.benchmark("sample_it{it}.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/sample.py"


rule filter:
    input:
        candidates=PATHS.candidates("{it}"),
        earlier=earlier_scores,
    output:
        executable=PATHS.executable("{it}"),
    params:
        config=cfg("sandbox"),
    log:
        PATHS.log("filter_it{it}.log"),
    benchmark:
        PATHS.benchmark("filter_it{it}.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/filter.py"


rule score:
    input:
        unpack(lambda wc: world_files()),
        candidates=PATHS.candidates("{it}"),
        executable=PATHS.executable("{it}"),
        earlier=earlier_scores,
        rows=PATHS.data("dev"),
        prompt=config["eval"]["prompt"],
    output:
        scores=PATHS.scores("{it}"),
    params:
        config=cfg("eval", "sandbox"),
    threads: config["loop"]["threads"]
    log:
        PATHS.log("score_it{it}.log"),
    benchmark:
        PATHS.benchmark("score_it{it}.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/score.py"


rule pairs:
    input:
        scores=PATHS.scores("{it}"),
        earlier=earlier_scores,
        prompt=config["factory"]["prompt"],
    output:
        pairs=PATHS.pairs("{it}"),
    params:
        config=cfg("seed", "factory.prompt", "loop.p_w", "loop.p_l", "loop.min_chosen", "loop.min_rejected", "loop.earlier_top", "loop.max_pairs"),
    log:
        PATHS.log("pairs_it{it}.log"),
    benchmark:
        PATHS.benchmark("pairs_it{it}.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/pairs.py"


rule dpo:
    input:
        factory=previous_factory,
        pairs=PATHS.pairs("{it}"),
    output:
        model=PATHS.factory("{it}"),
    params:
        config=cfg("seed", "dpo"),
    threads: config["loop"]["threads"]
    log:
        PATHS.log("dpo_it{it}.log"),
    benchmark:
        PATHS.benchmark("dpo_it{it}.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/dpo.py"


rule summary:
    input:
        iterations=[f for it in ITERATIONS for f in iteration_files(it).values()],
        world_report=PATHS.world_report("json"),
    output:
        json=PATHS.summary("json"),
        md=PATHS.summary("md"),
    params:
        iterations=[iteration_files(it) for it in ITERATIONS],
        benchmarks=PATHS.benchmark(""),
    log:
        PATHS.log("summary.log"),
    benchmark:
        PATHS.benchmark("summary.tsv")
    conda:
        "../envs/selfdev.yaml"
    script:
        "../scripts/summary.py"
