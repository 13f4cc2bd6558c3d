# Merging programs checked in the sandbox and scored on the world's dev split.


rule check_algorithm:
    input:
        program=algorithm_file,
        # M0's config: its depth is what the probe's layer sweep covers.
        seed=PATHS.seed_model(),
    output:
        verdict=PATHS.verdict("{algo}"),
    params:
        config=cfg("sandbox"),
    log:
        PATHS.log("check_{algo}.log"),
    benchmark:
        PATHS.benchmark("check_{algo}.tsv")
    conda:
        ENV
    script:
        "../scripts/check_algorithm.py"


rule score_algorithm:
    input:
        unpack(lambda wc: world_files()),
        program=algorithm_file,
        verdict=PATHS.verdict("{algo}"),
        rows=PATHS.data("dev"),
        prompt=config["eval"]["prompt"],
    output:
        score=PATHS.score("{algo}"),
    params:
        config=engine_cfg("threads", "device", "eval", "sandbox"),
        split="dev",
    threads: rule_threads(config, "score_algorithm", config["threads"])
    log:
        PATHS.log("score_{algo}.log"),
    benchmark:
        PATHS.benchmark("score_{algo}.tsv")
    resources:
        **rule_resources(config, "score_algorithm"),
    conda:
        SCORE_ENV
    script:
        "../scripts/score_algorithm.py"


rule algorithms_summary:
    input:
        scores=expand(PATHS.score("{algo}"), algo=sorted(ALGORITHMS)),
        world_report=PATHS.world_report("json"),
    output:
        md=PATHS.algorithms_summary("md"),
        json=PATHS.algorithms_summary("json"),
    log:
        PATHS.log("algorithms_summary.log"),
    benchmark:
        PATHS.benchmark("algorithms_summary.tsv")
    conda:
        ENV
    script:
        "../scripts/algorithms_summary.py"
