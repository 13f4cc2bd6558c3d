from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import filter_step

with logged(snakemake.log[0]):
    print(filter_step(config=snakemake.params.config, candidates=snakemake.input.candidates,
                      earlier_scores=list(snakemake.input.earlier), out_path=snakemake.output.executable,
                      seed_dir=str(Path(snakemake.input.seed).parent)))
