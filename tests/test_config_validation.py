"""Every configuration mistake stops the run before the first job.

The first set runs the real ``snakemake -n`` on config.yaml + the tiny preset + one bad override
file per case: each must exit non-zero, name the bad key and plan no job. The rest checks the
validation in-process: the shipped configurations pass, every error is listed at once with its
key path, value and what was expected, model names are checked token by token, the encoder
schema matches the encoder constructors, a method config lacking a key is refused, and
checkpoints get the user's umask and honest error messages.
"""

from __future__ import annotations

import inspect
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from fesr.config import ROOT, deep_merge, load_config, load_yaml, required_keys, schema
from fesr.validate import config_errors
from fesr.validate import main as validate_main

SNAKEMAKE = Path(sys.executable).with_name("snakemake")

# (case id, override merged over config.yaml + tiny.yaml, text the error must contain)
BAD = [
    # silently ignored before: misspelt keys, meaningless or contradictory variant tokens
    ("method_key_typo", {"methods": {"liif": {"hiden": [16]}}}, "methods.liif.hiden"),
    ("report_key_typo", {"report": {"table1_mehtods": ["liif"]}}, "report.table1_mehtods"),
    ("top_level_typo", {"trainig": {"iterations": 3}}, "trainig"),
    ("training_key_typo", {"training": {"iteratons": 3}}, "training.iteratons"),
    ("evaluation_key_typo", {"evaluation": {"scale": [2]}}, "evaluation.scale"),
    ("encoder_key_typo", {"encoders": {"rdn": {"G00": 8}}}, "encoders.rdn.G00"),
    ("bicubic_takes_no_keys", {"methods": {"bicubic": {"hidden": 16}}}, "methods.bicubic.hidden"),
    ("no_scs_on_liif", {"report": {"fig9_models": ["liif-no_scs"]}}, "liif-no_scs"),
    ("pe_on_liif", {"report": {"table2_models": ["liif-pe_plain"]}}, "liif-pe_plain"),
    ("encoder_on_bicubic", {"report": {"fig10_models": ["bicubic-swinir"]}}, "bicubic-swinir"),
    ("no_coef_on_bicubic", {"report": {"fig10_models": ["bicubic-no_coef"]}}, "bicubic-no_coef"),
    (
        "scale_tokens_contradict",
        {"report": {"table3_models": ["nhcsr-single_scale-multi_scale"]}},
        "nhcsr-single_scale-multi_scale",
    ),
    ("encoder_tokens_contradict", {"report": {"table3_models": ["liif-edsr-rdn"]}}, "edsr-rdn"),
    ("token_repeated", {"report": {"fig9_models": ["nhcsr-no_scs-no_scs"]}}, "nhcsr-no_scs-no_scs"),
    # seed replicas ({model}-seed{k}, report.table1_seeds)
    ("seed_zero", {"report": {"fig9_models": ["nhcsr-seed0"]}}, "seed token 'seed0'"),
    ("seed_leading_zero", {"report": {"table3_models": ["lit-seed01"]}}, "seed token 'seed01'"),
    ("seed_not_a_number", {"report": {"fig10_models": ["liif-seedx"]}}, "seed token 'seedx'"),
    ("seed_not_last", {"report": {"fig9_models": ["nhcsr-seed1-no_scs"]}}, "is not last"),
    ("seed_on_bicubic", {"report": {"fig10_models": ["bicubic-seed1"]}}, "bicubic-seed1"),
    ("seeds_zero", {"report": {"table1_seeds": {"nhcsr": 0}}}, "report.table1_seeds.nhcsr"),
    (
        "seeds_of_a_method_not_in_table1",
        {"report": {"table1_seeds": {"nhcsr-no_scs": 2}}},
        "report.table1_seeds.nhcsr-no_scs",
    ),
    ("seeds_of_bicubic", {"report": {"table1_seeds": {"bicubic": 2}}}, "learns nothing"),
    (
        "replica_listed_in_table1",
        {"report": {"table1_methods": ["bicubic", "nhcsr-seed1"]}},
        "report.table1_methods[1]",
    ),
    # caught late before: the dry run passed and a job failed
    (
        "unknown_map",
        {"splits": {"test_deterministic": {"maps": ["checkerbord"]}}},
        "splits.test_deterministic.maps[0]",
    ),
    ("unknown_token", {"report": {"table2_models": ["nhcsr-pe_fourier"]}}, "pe_fourier"),
    ("unknown_method", {"report": {"table1_methods": ["esdr"]}}, "report.table1_methods[0]"),
    ("contrast_reversed", {"physics": {"contrast": [100.0, 1.0]}}, "physics.contrast"),
    ("contrast_equal", {"physics": {"contrast": [5.0, 5.0]}}, "physics.contrast"),
    ("train_scale_not_pow2", {"training": {"train_scales": [3]}}, "training.train_scales[0]"),
    ("train_scale_not_in_split", {"training": {"train_scales": [8]}}, "training.train_scales[0]"),
    ("eval_scale_not_in_split", {"evaluation": {"scales": [16]}}, "evaluation.scales[0]"),
    # unclear before: bare IndexError / TypeError
    ("no_eval_splits", {"evaluation": {"splits": []}}, "evaluation.splits"),
    ("no_table1_methods", {"report": {"table1_methods": []}}, "report.table1_methods"),
    ("unknown_encoder", {"methods": {"liif": {"encoder": "edsr"}}}, "methods.liif.encoder"),
    # value combinations a constructor or the data stage would refuse later
    ("heads_do_not_divide", {"methods": {"nhcsr": {"dim": 15}}}, "methods.nhcsr.dim"),
    (
        "clit_phase_count",
        {"methods": {"clit": {"cumulative": {"stage_iterations": [1.0]}}}},
        "methods.clit.cumulative.stage_iterations",
    ),
    ("idm_betas_reversed", {"methods": {"idm": {"beta_start": 0.5}}}, "methods.idm.beta_start"),
    (
        "swinir_heads",
        {"encoders": {"swinir": {"embed_dim": 9, "num_heads": [2]}}},
        "encoders.swinir.num_heads[0]",
    ),
    ("milestone_never_reached", {"training": {"lr_milestones": [9]}}, "training.lr_milestones[0]"),
    (
        "split_kind",
        {"splits": {"test_random": {"kind": "deterministic"}}},
        "splits.test_random.kind",
    ),
    (
        "split_scale_unknown",
        {"splits": {"train": {"scales": [1, 2, 4, 16]}}},
        "splits.train.scales",
    ),
    ("val_samples_too_many", {"training": {"val_samples": 5}}, "training.val_samples"),
    ("bad_enum_value", {"methods": {"nhcsr": {"pe": "fourier"}}}, "methods.nhcsr.pe"),
    ("linf_patch", {"methods": {"linf": {"patch": 3}}}, "methods.linf.patch"),
    ("training_patch_not_whole_cells", {"training": {"patch": 7}}, "training.patch"),
]


def test_cases_are_distinct_and_enough():
    assert len(BAD) >= 25
    assert len({case for case, _, _ in BAD}) == len(BAD)
    assert len({yaml.safe_dump(over) for _, over, _ in BAD}) == len(BAD)


@pytest.mark.slow  # one real Snakemake start per case (3-7 s each)
@pytest.mark.parametrize(("case", "override", "key"), BAD, ids=[c for c, _, _ in BAD])
def test_snakemake_dry_run_refuses(case, override, key, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    # targets and options before --configfile: everything after it is read as a config file
    cmd = [str(SNAKEMAKE), "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)]
    cmd += ["--cores", "1", "--configfile", str(ROOT / "config.yaml")]
    cmd += [str(ROOT / "workflow/presets/tiny.yaml"), str(bad)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"{case}: the dry run passed\n{out[-2000:]}"
    assert "Invalid configuration" in out, out[-2000:]
    assert key in out, f"{case}: the error does not name {key!r}\n{out[-2000:]}"
    assert "Job stats" not in out  # stopped before any job was planned


def _merged(override: dict) -> dict:
    config = deep_merge(
        load_yaml(ROOT / "config.yaml"), load_yaml(ROOT / "workflow/presets/tiny.yaml")
    )
    return deep_merge(config, override)


@pytest.mark.parametrize("preset", [None, "tiny", "quick", "study"])
def test_shipped_configurations_are_valid(preset):
    if preset == "study":  # layered over quick.yaml, as `make study` gives them
        load_config("quick", load_yaml(ROOT / "workflow/presets/study.yaml"))
    else:
        load_config(preset)  # raises on any error


@pytest.mark.parametrize(("case", "override", "key"), BAD, ids=[c for c, _, _ in BAD])
def test_each_case_fails_in_process_with_one_line_naming_the_key(case, override, key):
    errors = config_errors(_merged(override))
    assert errors and any(key in e for e in errors), errors
    assert all("\n" not in e for e in errors)


def test_message_names_path_value_and_expectation():
    errors = config_errors(
        _merged({"methods": {"liif": {"hiden": [16]}}, "physics": {"contrast": [100.0, 1.0]}})
    )
    typo = next(e for e in errors if "methods.liif.hiden" in e)
    assert "[16]" in typo and "'hidden'" in typo  # the value and the keys expected
    contrast = next(e for e in errors if e.startswith("physics.contrast"))
    assert "[100.0, 1.0]" in contrast and "low < high" in contrast


def test_every_error_is_listed_at_once(capsys, tmp_path):
    over = {
        "methods": {"liif": {"hiden": [16]}},
        "report": {"table1_mehtods": ["liif"], "fig9_models": ["liif-no_scs"]},
        "training": {"train_scales": [3]},
        "splits": {"test_deterministic": {"maps": ["nope"]}},
    }
    assert len(config_errors(_merged(over))) == 5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(over))
    tiny = str(ROOT / "workflow/presets/tiny.yaml")
    assert validate_main(["--configfile", tiny, str(path)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 5
    assert validate_main(["--configfile", tiny]) == 0


def test_load_config_lists_every_error():
    with pytest.raises(ValueError, match=r"(?s)methods\.liif\.hiden.*physics\.contrast"):
        load_config("tiny", {"methods": {"liif": {"hiden": [1]}}, "physics": {"contrast": [2, 1]}})


def test_encoder_schema_matches_the_constructors():
    """The encoder keys the schema accepts are exactly the constructors' keyword arguments."""
    from fesr.models.encoders import RDN, EDSRBaseline
    from fesr.models.swinir import SwinIREncoder

    props = schema()["properties"]["encoders"]["properties"]
    for name, cls in (("edsr-baseline", EDSRBaseline), ("rdn", RDN), ("swinir", SwinIREncoder)):
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "in_channels"}
        assert set(props[name]["properties"]) == params, name


def test_model_names_checked_token_by_token():
    from fesr.models.registry import parse_model_name

    assert parse_model_name("nhcsr-single_scale-no_scs") == (
        "nhcsr",
        {"multi_scale": False, "scs": False},
    )
    assert parse_model_name("liif-edsr") == ("liif", {"encoder": "edsr-baseline"})
    for bad, why in [
        ("liif-no_scs", "does not have"),
        ("bicubic-rdn", "does not have"),
        ("nhcsr-pe_lte-pe_ipe", "contradicts"),
        ("nhcsr-no_coef-no_coef", "repeats"),
        ("lte-nope", "unknown variant"),
        ("nhcsr-seed0", "seed token 'seed0'.*k a positive integer without leading zeros"),
        ("nhcsr-seed01", "seed token 'seed01'"),
        ("nhcsr-seedx", "seed token 'seedx'"),
        ("liif-seed", "seed token 'seed'"),
        ("bicubic-seed1", "'seed1' sets the training seed.*'bicubic'"),
        ("nhcsr-seed1-no_scs", "seed token 'seed1' is not last"),
        ("nhcsr-seed1-seed2", "seed token 'seed1' is not last"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_model_name(bad)


def test_seed_token_is_no_method_override():
    """``{model}-seed{k}``: the model's overrides, replica k; the plain name is replica 0."""
    from fesr.model_names import model_seed, parse_model_name, seed_replicas, training_seed

    assert parse_model_name("nhcsr-seed1") == ("nhcsr", {})
    assert parse_model_name("nhcsr-no_scs-seed12") == ("nhcsr", {"scs": False})
    assert parse_model_name("liif-edsr-seed3") == parse_model_name("liif-edsr")
    assert [model_seed(n) for n in ("nhcsr", "nhcsr-seed1", "lit-rdn-seed10")] == [None, 1, 10]
    assert training_seed("nhcsr-seed2", 7) == 9 and training_seed("nhcsr", 7) == 7
    assert seed_replicas("lit", 3) == ["lit", "lit-seed1", "lit-seed2"]
    assert seed_replicas("lit", 1) == ["lit"]


def test_resolve_refuses_a_method_config_lacking_a_key(tiny_config):
    from fesr.models.registry import resolve_model_config

    assert "hidden" in required_keys(("methods", "liif"))
    config = {**tiny_config, "methods": {**tiny_config["methods"], "liif": {"encoder": "rdn"}}}
    with pytest.raises(ValueError, match=r"methods\.liif.*'hidden'"):
        resolve_model_config("liif", config)
    enc = {**tiny_config["encoders"], "rdn": {"G0": 8}}
    with pytest.raises(ValueError, match=r"encoders\.rdn.*'D'"):
        resolve_model_config("liif-rdn", {**tiny_config, "encoders": enc})
    # a complete config resolves, every schema-required key present
    cfg = resolve_model_config("nhcsr", tiny_config)
    assert set(required_keys(("methods", "nhcsr"))) <= set(cfg)


# -- checkpoints ---------------------------------------------------------------------------------
def _save(tmp_path, tiny_config, name="ck.pt"):
    from fesr.checkpoint import save_checkpoint
    from fesr.models.registry import resolve_model_config

    return save_checkpoint(
        tmp_path / name,
        model_name="bicubic",
        model_cfg=resolve_model_config("bicubic", tiny_config),
        state_dict={},
        iteration=0,
        u_scale=1.0,
        contrast=[1.0, 100.0],
    )


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_checkpoint_mode_follows_the_umask(tmp_path, tiny_config, umask):
    old = os.umask(umask)
    try:
        path = _save(tmp_path, tiny_config)
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives every other output
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_missing_cuda_is_reported_as_such(tmp_path, tiny_config):
    from fesr.checkpoint import load_checkpoint
    from fesr.cli import UsageError

    path = _save(tmp_path, tiny_config)
    with pytest.raises(UsageError, match="no CUDA device") as err:
        load_checkpoint(path, map_location="cuda")
    assert "corrupt" not in str(err.value)


class Hostile:  # a pickled class: loading it would run code
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("kind", ["pickled_class", "garbage"])
def test_checkpoint_errors_never_advise_weights_only_false(tmp_path, kind):
    from fesr.checkpoint import load_checkpoint

    path = tmp_path / f"{kind}.pt"
    if kind == "pickled_class":
        torch.save({"obj": Hostile()}, path)
    else:
        path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    text = str(err.value)
    assert str(path) in text and "weights_only" not in text and "\n" not in text
    if kind == "pickled_class":
        assert "refused" in text
