from selfdev.io import logged
from selfdev.world.build import write_split

with logged(snakemake.log[0]):
    print(write_split(split=snakemake.wildcards.split, config=snakemake.params.config, out=snakemake.output.rows,
                      prompt=snakemake.input.get("prompt")))
