# The final study: top programs on test, mergekit baselines (grid and budget-matched), transfer to a
# new expert family, the arms' comparison, plots and the HTML report.


# The top programs of an arm and seed scored once on test; with eval.shards > 1, one shard of them
# per job, gathered by final_test_gather.
rule final_test:
    input:
        unpack(lambda wc: world_files()),
        scores=lambda wc: selected_scores(wc.arm, int(wc.seed)),
        rows=PATHS.data("test"),
        prompt=config["eval"]["prompt"],
    output:
        test=PATHS.final_test("{arm}", "{seed}") if SHARDS == 1 else PATHS.final_test_shard("{arm}", "{seed}", "{shard}", "{shards}"),
    params:
        config=engine_cfg("device", "eval", "sandbox", "study"),
    threads: rule_threads(config, "final_test", config["threads"])
    log:
        PATHS.log("final_test_{arm}_s{seed}.log") if SHARDS == 1 else PATHS.log("final_test_{arm}_s{seed}_shard{shard}of{shards}.log"),
    benchmark:
        PATHS.benchmark("final_test_{arm}_s{seed}.tsv") if SHARDS == 1 else PATHS.benchmark("final_test_{arm}_s{seed}_shard{shard}of{shards}.tsv")
    resources:
        **rule_resources(config, "final_test"),
    conda:
        SCORE_ENV
    script:
        "../scripts/final_test.py"


if SHARDS > 1:

    rule final_test_gather:
        input:
            scores=lambda wc: selected_scores(wc.arm, int(wc.seed)),
            shards=final_test_shards,
        output:
            test=PATHS.final_test("{arm}", "{seed}"),
        params:
            config=engine_cfg("device", "eval", "sandbox", "study"),
        log:
            PATHS.log("final_test_{arm}_s{seed}.log"),
        benchmark:
            PATHS.benchmark("final_test_{arm}_s{seed}.tsv")
        conda:
            ENV
        script:
            "../scripts/final_test_gather.py"


rule baseline:
    input:
        unpack(lambda wc: world_files(wc.family)),
        budget=lambda wc: [p for run in budget_runs(wc) for p in run],
        dev=PATHS.data("dev"),
        test=PATHS.data("test"),
        prompt=config["eval"]["prompt"],
    output:
        record=PATHS.baseline("{family}", "{method}", "{mode}"),
    params:
        config=engine_cfg("seed", "threads", "device", "eval", "baselines", "loop.racing"),
        runs=budget_runs,
    threads: rule_threads(config, "baseline", config["threads"])
    log:
        PATHS.log("baseline_{family}_{method}_{mode}.log"),
    benchmark:
        PATHS.benchmark("baseline_{family}_{method}_{mode}.tsv")
    resources:
        **rule_resources(config, "baseline"),
    conda:
        SCORE_ENV
    script:
        "../scripts/baseline.py"


rule singles:
    input:
        seed=PATHS.seed_model(),
        shots=PATHS.data("shots"),
        experts=lambda wc: [PATHS.expert_model(e) for e in family_experts(config, wc.family)],
        multitask=lambda wc: [PATHS.multitask_model()] if MULTITASK and wc.family == "main" else [],
        dev=PATHS.data("dev"),
        test=PATHS.data("test"),
        prompt=config["eval"]["prompt"],
    output:
        record=PATHS.singles("{family}"),
    params:
        config=engine_cfg("device", "eval"),
    threads: rule_threads(config, "singles", config["threads"])
    log:
        PATHS.log("singles_{family}.log"),
    benchmark:
        PATHS.benchmark("singles_{family}.tsv")
    resources:
        **rule_resources(config, "singles"),
    conda:
        ENV
    script:
        "../scripts/singles.py"


rule transfer:
    input:
        unpack(lambda wc: world_files("transfer")),
        scores=[p for s in SEEDS for p in selected_scores(MAIN_ARM, s)],
        dev=PATHS.data("dev"),
        test=PATHS.data("test"),
        prompt=config["eval"]["prompt"],
    output:
        programs=PATHS.transfer_programs(),
    params:
        config=engine_cfg("device", "eval", "sandbox", "study", "transfer"),
    threads: rule_threads(config, "transfer", config["threads"])
    log:
        PATHS.log("transfer.log"),
    benchmark:
        PATHS.benchmark("transfer.tsv")
    resources:
        **rule_resources(config, "transfer"),
    conda:
        SCORE_ENV
    script:
        "../scripts/transfer.py"


rule study:
    input:
        finals=[PATHS.final_test(a, s) for a in ARMS for s in SEEDS],
        baselines=baseline_files(),
        singles=[PATHS.singles(f) for f in FAMILIES],
        transfer=[PATHS.transfer_programs()] if TRANSFER else [],
        scores=[PATHS.scores(a, s, it) for a in ARMS for s in SEEDS for it in ITERATIONS],
        executables=[PATHS.executable(a, s, it) for a in ARMS for s in SEEDS for it in ITERATIONS],
    output:
        **{k: report(v, category="Study", caption="../report/study.rst") if k == "html" else v
           for k, v in study_outputs().items()},
    params:
        config=cfg("study"),
        runs={a: {s: run_scores(a, s) for s in SEEDS} for a in ARMS},
    log:
        PATHS.log("study.log"),
    benchmark:
        PATHS.benchmark("study.tsv")
    conda:
        ENV
    script:
        "../scripts/study.py"


rule plots:
    input:
        leaderboard=PATHS.final("leaderboard.parquet"),
        baselines=PATHS.final("baselines.parquet"),
        arms=PATHS.final("arms.json"),
        summaries=[PATHS.run_summary(a, s, "json") for a in ARMS for s in SEEDS],
    output:
        **{name: report(PATHS.plot(name), category="Plots", caption=f"../report/{name}.rst") for name in PLOTS},
    log:
        PATHS.log("plots.log"),
    benchmark:
        PATHS.benchmark("plots.tsv")
    conda:
        ENV
    script:
        "../scripts/plots.py"


rule study_targets:
    # Everything but the HTML report, which `report_html` builds from these with `snakemake --report`.
    input:
        world_report=PATHS.world_report("md"),
        algorithms=PATHS.algorithms_summary("md"),
        task_vectors=[PATHS.task_vector(e) for e in EXPERTS + TRANSFER],
        scores=[PATHS.score(a) for a in sorted(ALGORITHMS)],
        loop=loop_files(),
        runs=[PATHS.run_summary(a, s, "md") for a in ARMS for s in SEEDS],
        study=list(study_outputs().values()),
        plots=[PATHS.plot(p) for p in PLOTS],


rule report_html:
    input:
        rules.study_targets.input,
    output:
        html=PATHS.report_html(),
        config=PATHS.final("report_config.yaml"),
    params:
        config=canonical(config),
        snakefile=workflow.main_snakefile,
    log:
        PATHS.log("report_html.log"),
    benchmark:
        PATHS.benchmark("report_html.tsv")
    conda:
        ENV
    script:
        "../scripts/report_html.py"
