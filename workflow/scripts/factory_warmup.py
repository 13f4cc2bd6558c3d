from pathlib import Path

from selfdev.io import logged
from selfdev.loop.steps import factory_warmup

with logged(snakemake.log[0]):
    log = factory_warmup(config=snakemake.params.config, in_dir=str(Path(snakemake.input.model).parent),
                         out_dir=str(Path(snakemake.output.model).parent), threads=snakemake.threads)
    print({k: log[k] for k in ("steps", "loss_first", "loss_last", "seconds")})
