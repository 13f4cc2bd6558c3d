from pathlib import Path

from selfdev.io import logged
from selfdev.study.steps import singles_step

with logged(snakemake.log[0]):
    print(singles_step(config=snakemake.params.config, family=snakemake.wildcards.family,
                       seed_dir=str(Path(snakemake.input.seed).parent),
                       expert_dirs=[str(Path(p).parent) for p in snakemake.input.experts],
                       multitask_dir=str(Path(snakemake.input.multitask[0]).parent) if snakemake.input.multitask else None,
                       dev_path=snakemake.input.dev, shots_path=snakemake.input.shots,
                       test_path=snakemake.input.test, out_path=snakemake.output.record, threads=snakemake.threads))
