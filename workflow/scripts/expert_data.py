from selfdev.io import logged
from selfdev.world.build import write_expert_data

with logged(snakemake.log[0]):
    print(write_expert_data(name=snakemake.wildcards.expert, config=snakemake.params.config,
                            out=snakemake.output.rows))
