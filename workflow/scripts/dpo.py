from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import dpo_step

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    log = dpo_step(config=snakemake.params.config, rep=int(w.seed), iteration=int(w.it),
                   factory_dir=str(Path(snakemake.input.factory).parent), pairs=snakemake.input.pairs,
                   out_dir=str(Path(snakemake.output.model).parent), threads=snakemake.threads)
    print({k: log.get(k) for k in ("pairs", "loss_first", "loss_last", "seconds", "skipped")})
