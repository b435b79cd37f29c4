"""Configurations that are accepted only to fail late, or never: refused up front.

Each class goes through the real ``snakemake -n`` once, with one override file holding several
independent mistakes: the dry run must stop before planning a job and name each mistake in
exactly one error line (one mistake, one error). The rest checks the validation in-process:
numbers are finite and of their type, seeds fit, names fit the file system, models are unique
after normalising their names, the memory estimate refuses what cannot fit but passes the
shipped presets, and YAML is strict (duplicate keys with their lines; aliases refused at once).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fesr.config import ROOT, YamlError, deep_merge, load_yaml, yaml_file_errors
from fesr.validate import (
    GIB,
    PREDICT_SEED_STRIDE,
    config_errors,
    evaluation_terms,
    job_bytes,
    model_sources,
    training_terms,
)

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TINY = ROOT / "workflow/presets/tiny.yaml"
QUICK = ROOT / "workflow/presets/quick.yaml"
STUDY = ROOT / "workflow/presets/study.yaml"


def dry_run(tmp_path, *configfiles):
    """``snakemake -n`` on config.yaml and ``configfiles``: (exit code, output, seconds)."""
    cmd = [str(SNAKEMAKE), "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)]
    cmd += ["--cores", "1", "--configfile", str(ROOT / "config.yaml"), *map(str, configfiles)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    return res.returncode, res.stdout + res.stderr, time.perf_counter() - t0


def error_lines(out: str) -> list[str]:
    """The error lines Snakefile prints under 'Invalid configuration'."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("Invalid configuration"))
    return [ln.strip() for ln in lines[start + 1 :] if ln.startswith("  ")]


def merged(*overrides, preset=TINY) -> dict:
    config = load_yaml(ROOT / "config.yaml")
    if preset is not None:
        config = deep_merge(config, load_yaml(preset))
    for over in overrides:
        config = deep_merge(config, over)
    return config


def one_error(config, key: str) -> str:
    errors = config_errors(config)
    assert len(errors) == 1, errors
    assert key in errors[0], errors
    assert "\n" not in errors[0]
    return errors[0]


# -- through snakemake -n -------------------------------------------------------------------------
# key -> text its one error must contain, for the mistakes of NUMBERS_AND_NAMES
NUMBERS_AND_NAMES = """\
seed: 18446744073709551616
physics:
  E: 64.0
  contrast: [1.0, .nan]
  p_high: .inf
solver: {ksp_type: preonly, pc_type: jacobi}
training: {train_scales: [1, 2]}
splits:
  test_deterministic: {maps: "checkerboard, channels_cross"}
report:
  table2_models: [nhcsr-pe_plain, nhcsr-pe_gabor]
  fig9_models: [nhcsr-no_scs, nhcsr-seed%s]
""" % ("9" * 300)
EXPECTED = {
    "seed:": "signed 64-bit",
    "physics.E:": "expected an integer",
    "physics.contrast[1]:": "finite number",
    "physics.p_high:": "finite number",
    "solver.pc_type:": "preonly",
    "training.train_scales[0]:": "alpha = 1",
    "splits.test_deterministic.maps:": "'all' or a non-empty list",
    "report.table2_models[1]:": "same model as 'nhcsr'",
    "report.fig9_models[1]:": "bytes",
}


@pytest.mark.slow
def test_dry_run_names_each_number_and_name_mistake_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(NUMBERS_AND_NAMES)
    rc, out, _ = dry_run(tmp_path, TINY, bad)
    assert rc != 0 and "Job stats" not in out, out[-3000:]
    errors = error_lines(out)
    for key, text in EXPECTED.items():
        hits = [e for e in errors if e.startswith(key)]
        assert len(hits) == 1, f"{key}: {hits}\n{errors}"
        assert text in hits[0], hits[0]
    assert len(errors) == len(EXPECTED), errors  # nothing else: one error per mistake


@pytest.mark.slow
def test_dry_run_refuses_a_zero_source_and_sizes_beyond_memory(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "memory_budget_gib": 64,  # the same verdict on any machine
                "physics": {"source": 0.0},
                "training": {"sample_q": 100_000_000},
            }
        )
    )
    rc, out, _ = dry_run(tmp_path, bad)  # config.yaml alone: the paper's sizes
    assert rc != 0 and "Job stats" not in out, out[-3000:]
    errors = error_lines(out)
    assert len(errors) == 2, errors
    source, memory = sorted(errors)[0], sorted(errors)[1]
    assert source.startswith("physics.source: 0.0") and "u = 0" in source
    assert memory.startswith("training.sample_q:") and "GiB" in memory
    assert "memory_budget_gib (64 GiB)" in memory


@pytest.mark.slow
def test_dry_run_names_duplicate_keys_with_lines_and_refuses_an_alias_bomb_fast(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("training:\n  batch_size: 2\n  iterations: 4\n  batch_size: 3\n")
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb.write_text("\n".join(lines) + "\n")  # 9^10 items when expanded
    t0 = time.perf_counter()
    assert len(yaml_file_errors(bomb)) == 1
    assert time.perf_counter() - t0 < 1.0
    rc, out, seconds = dry_run(tmp_path, TINY, dup, bomb)
    assert rc != 0 and "Job stats" not in out, out[-3000:]
    errors = error_lines(out)
    assert errors == [
        f"{dup}:4: duplicate key 'batch_size' (first at line 2); expected each key once per "
        "mapping (YAML would keep the last value silently)",
        f"{bomb}:2: YAML alias '*a0' refused; expected the value written out (an alias can "
        "expand a small file into an enormous configuration)",
    ]
    assert seconds < 60  # Snakemake's own start-up; the alias costs nothing


@pytest.mark.slow
@pytest.mark.parametrize("presets", [(), (TINY,), (QUICK,), (QUICK, STUDY)], ids=str)
def test_shipped_presets_still_plan(tmp_path, presets):
    """The memory estimate and the new rules pass every shipped configuration on this machine."""
    rc, out, _ = dry_run(tmp_path, *presets)
    assert rc == 0 and "Job stats" in out, out[-3000:]


# -- numbers --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key", "text"),
    [
        ({"physics": {"E": 64.0}}, "physics.E", "not a float such as 64.0"),
        ({"physics": {"E": True}}, "physics.E", "not a bool"),
        ({"training": {"batch_size": 2.0}}, "training.batch_size", "an integer"),
        ({"physics": {"contrast": [1.0, float("inf")]}}, "physics.contrast[1]", "finite"),
        ({"physics": {"p_high": float("nan")}}, "physics.p_high", "finite"),
        ({"physics": {"source": 1 + 2j}}, "physics.source", "complex"),
        ({"physics": {"source": float("-inf")}}, "physics.source", "finite"),
        ({"training": {"lr": True}}, "training.lr", "finite number"),
        ({"solver": {"rtol": "1e-10"}}, "solver.rtol", "write 1.0e-10"),
        ({"training": {"train_scales": [2.0, 4]}}, "training.train_scales[0]", "an integer"),
    ],
)
def test_numbers_are_finite_and_of_their_type(override, key, text):
    error = one_error(merged(override), key)
    assert text in error, error


def test_source_must_be_positive():
    for f in (0, 0.0, -1.0):
        assert "expected a number > 0" in one_error(merged({"physics": {"source": f}}), "source")


def test_seeds_fit_the_generators_and_files():
    from fesr.evaluate.predict import SEED_STRIDE, sample_seed

    assert SEED_STRIDE == PREDICT_SEED_STRIDE
    config = merged()
    limit = int(one_error(merged({"seed": 2**63}), "seed").split("expected <= ")[1].split()[0])
    assert config_errors(merged({"seed": limit})) == []
    assert config_errors(merged({"seed": limit + 1}))
    # the largest accepted seed still seeds torch for the last sample of the largest split
    import torch

    last = max(s.get("samples", 0) for s in config["splits"].values()) - 1
    torch.manual_seed(sample_seed(limit, last))
    with pytest.raises((RuntimeError, ValueError)):  # one more would overflow torch's seed
        torch.manual_seed(sample_seed(limit + 1, last))
    name = "nhcsr-seed" + "9" * 20  # a 20-digit replica number: seed + k overflows int64
    err = one_error(merged({"report": {"fig9_models": [name]}}), "report.fig9_models[0]")
    assert "signed 64-bit" in err
    assert "expected <= 100" in one_error(
        merged({"report": {"table1_seeds": {"nhcsr": 10**6}}}), "report.table1_seeds.nhcsr"
    )


def test_generated_names_fit_the_file_system(tmp_path):
    fits = "nhcsr-seed" + "1" * 221  # 231 bytes: the longest name (its seed is too large)
    assert "bytes" not in one_error(merged({"report": {"fig9_models": [fits]}}), "fig9_models")
    err = one_error(merged({"report": {"fig9_models": [fits + "1"]}}), "report.fig9_models[0]")
    assert "232 bytes" in err
    # what the limit protects: the longest file named after a model, on this file system
    (tmp_path / f".{fits}.csv.tmp{2**22}").write_text("")
    with pytest.raises(OSError, match="too long"):
        (tmp_path / f".{fits}{'1' * 24}.csv.tmp{2**22}").write_text("")


@pytest.mark.parametrize(
    ("names", "key", "why"),
    [
        (["nhcsr-pe_plain", "nhcsr-pe_gabor"], "table2_models[1]", "'pe_gabor' sets pe"),
        (["liif", "liif-edsr"], "table2_models[1]", "'edsr' sets encoder"),
        (["nhcsr-multi_scale"], "table2_models[0]", "'multi_scale' sets multi_scale"),
        (["nhcsr-no_scs-pe_ipe", "nhcsr-pe_ipe-no_scs"], "table2_models[1]", "another order"),
    ],
)
def test_models_are_unique_after_normalising_their_names(names, key, why):
    error = one_error(merged({"report": {"table2_models": names}}), key)
    assert why in error and "same model" in error, error


def test_a_changed_default_makes_the_token_a_variant_again():
    over = {"methods": {"nhcsr": {"pe": "plain"}}, "report": {"table2_models": ["nhcsr-pe_gabor"]}}
    assert config_errors(merged(over)) == []


def test_solver_options_that_cannot_meet_the_tolerance():
    for pc in ("jacobi", "hypre", "gamg", "none"):
        err = one_error(merged({"solver": {"ksp_type": "preonly", "pc_type": pc}}), "solver")
        assert "exact factorisation" in err
    assert config_errors(merged({"solver": {"ksp_type": "preonly", "pc_type": "lu"}})) == []
    # tiny holds n = 256 at most: its round-off floor is about 7e-12
    err = one_error(merged({"solver": {"rtol": 1e-14}}), "solver.rtol")
    assert "n = 256" in err
    assert config_errors(merged({"solver": {"rtol": 1e-12}})) == []
    # the paper's 64x (n = 2048) meets 1e-10 but not 1e-11
    assert config_errors(merged({"solver": {"rtol": 1e-10}}, preset=None)) == []
    assert "n = 2048" in one_error(merged({"solver": {"rtol": 1e-11}}, preset=None), "solver")


# -- memory ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"methods": {"nhcsr": {"pixel_shuffle": 64}}}, "methods.nhcsr.pixel_shuffle"),
        ({"training": {"sample_q": 10**8}}, "training.sample_q"),
        ({"training": {"batch_size": 4096}}, "training.batch_size"),
        ({"evaluation": {"chunk": 10**9}}, "evaluation.chunk"),
    ],
)
def test_sizes_beyond_the_budget_are_refused_with_the_estimate(override, key):
    config = merged(override, {"memory_budget_gib": 64}, preset=None)
    errors = config_errors(config)
    assert len(errors) == 1 and key in errors[0], errors
    assert "more than memory_budget_gib (64 GiB)" in errors[0] and "GiB" in errors[0]


def test_a_huge_coefficient_grid_names_its_chunk_and_memory():
    config = merged({"physics": {"E": 32768}, "training": {"patch": None}}, preset=None)
    errors = config_errors(config)
    assert any("HDF5" in e and e.startswith("physics.E") for e in errors), errors
    assert all(e.startswith("physics.E") for e in errors), errors


def test_the_estimate_is_a_lower_bound_of_what_a_model_holds(tiny_config):
    """The estimate's feature-map term against the tensor it counts: NH-CSR's encoder output and
    its pixel-shuffled fine map for one whole field (float32), built by the real model."""
    import torch

    from fesr.models.registry import build_model

    config = merged({"methods": {"nhcsr": {"pixel_shuffle": 4}}})
    model = build_model("nhcsr", config).eval()
    E = config["physics"]["E"]
    image = torch.zeros(1, 2, E, E)
    with torch.inference_mode():
        feat = model.encoder(image)
        fine = model.expand(feat)
    actual = (feat.numel() + fine.numel()) * 4
    maps = next(b for what, b, _ in evaluation_terms(config, "nhcsr") if "feature" in what)
    assert actual <= maps <= 8 * actual  # counted, and not inflated


def test_the_budget_key_and_this_machines_memory():
    import psutil

    config = merged()
    assert config_errors(merged({"memory_budget_gib": 0.5})), "1 GiB of runtime exceeds 0.5"
    total = psutil.virtual_memory().total
    worst = max(
        job_bytes(training_terms(config, m)) for m in model_sources(config) if m != "bicubic"
    )
    assert worst < total
    assert config_errors(merged({"memory_budget_gib": 0})) != []  # exclusiveMinimum 0
    assert GIB == 2**30


# -- YAML -----------------------------------------------------------------------------------------
def test_duplicate_keys_are_named_with_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nphysics:\n  E: 64\n  p_high: 0.5\n  E: 128\nseed: 2\n")
    assert yaml_file_errors(path) == [
        f"{path}:5: duplicate key 'E' (first at line 3); expected each key once per mapping "
        "(YAML would keep the last value silently)",
        f"{path}:6: duplicate key 'seed' (first at line 1); expected each key once per mapping "
        "(YAML would keep the last value silently)",
    ]
    with pytest.raises(YamlError, match="duplicate key 'E'"):
        load_yaml(path)


def test_an_alias_is_refused_before_anything_is_built(tmp_path):
    path = tmp_path / "c.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 30)]
    path.write_text("\n".join(lines) + "\n")  # 9^30 when expanded
    t0 = time.perf_counter()
    errors = yaml_file_errors(path)
    assert time.perf_counter() - t0 < 1.0
    assert len(errors) == 1 and f"{path}:2: YAML alias '*a0' refused" in errors[0]


def test_validate_cli_reports_yaml_errors_in_one_line_each(tmp_path, capsys):
    from fesr.validate import main

    path = tmp_path / "c.yaml"
    path.write_text("training:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")
    assert main(["--configfile", str(TINY), str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{path}:3: duplicate key 'lr' (first at line 2)")


def test_a_message_never_expands_a_huge_value():
    shared = ["x"] * 10
    for _ in range(8):
        shared = [shared] * 10  # 10^9 leaves through shared references
    t0 = time.perf_counter()
    errors = config_errors(merged({"trainig": shared}))
    assert time.perf_counter() - t0 < 1.0
    assert len(errors) == 1 and len(errors[0]) < 400, errors
