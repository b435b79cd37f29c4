# Two commands do everything on a fresh Debian bookworm machine:
#   make run    set up what is missing, then run the quick preset of the whole pipeline
#   make test   set up what is missing, then run the test suite
#   make study  set up what is missing, then run the study preset into study/ (see study.yaml)
SHELL := /bin/bash
SYS_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
# Keep BLAS/OpenMP from oversubscribing the cores that MPI ranks and Snakemake jobs share.
export OMP_NUM_THREADS ?= 1

.PHONY: setup system run study test lint clean docs docs-study

setup: system $(STAMP)

# System packages (DOLFINx, MPI; SLURM and munge for the cluster test), installed only when missing.
system:
	@bash workflow/scripts/install_system.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(SYS_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

run: setup
	$(VENV)/bin/snakemake --cores all --configfile workflow/presets/quick.yaml --rerun-incomplete

# The CPU-scale reproduction study in its own directory, study/results/, so that it and `make run`'s
# results/ never overwrite each other; an interrupted study resumes where it stopped. study.yaml
# holds only what differs from quick.yaml, so both are given, in this order.
study: setup
	$(VENV)/bin/snakemake --cores all --directory study \
		--configfile $(CURDIR)/workflow/presets/quick.yaml $(CURDIR)/workflow/presets/study.yaml \
		--rerun-incomplete

test: setup
	$(VENV)/bin/pytest tests

# Generated pages in docs/: the configuration page from the schema, then the results page of a
# run with the files it links (results/ is the quick preset's, study/results/ the study's).
docs: $(STAMP)
	$(PY) -m fesr.report.config_doc
	$(PY) -m fesr.report.results_page publish --results results --dest docs/quick --expect-preset quick

docs-study: $(STAMP)
	$(PY) -m fesr.report.results_page publish --results study/results --dest docs/study \
		--expect-preset study

lint: setup
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf results .snakemake study
