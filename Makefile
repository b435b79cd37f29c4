# Two commands do everything on a fresh Debian bookworm machine:
#   make run    set up what is missing, then run the quick preset of the whole pipeline
#   make test   set up what is missing, then run the test suite
#   make study  set up what is missing, then run the study preset into study/ (issue 14; about 2 h)
SHELL := /bin/bash
SYS_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
# Keep BLAS/OpenMP from oversubscribing the cores that MPI ranks and Snakemake jobs share.
export OMP_NUM_THREADS ?= 1

.PHONY: setup system run study test lint clean

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

# The CPU-scale reproduction study (issue 14) in its own directory, study/results/, so that it and
# `make run`'s results/ never overwrite each other; an interrupted study resumes where it stopped
study: setup
	$(VENV)/bin/snakemake --cores all --directory study \
		--configfile $(CURDIR)/workflow/presets/study.yaml --rerun-incomplete

test: setup
	$(VENV)/bin/pytest tests

lint: setup
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf results .snakemake study
