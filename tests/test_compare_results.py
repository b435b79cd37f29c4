"""benchmarks/compare_results.py: equal trees pass, added rows and columns pass as long as
every shared cell is the same, and one changed cell, lost row or changed NetCDF value fails."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_results.py"


@pytest.fixture(scope="module")
def cr():
    spec = importlib.util.spec_from_file_location("compare_results", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tree(root: Path, table: pd.DataFrame, field: np.ndarray) -> Path:
    (root / "tables").mkdir(parents=True)
    (root / "data" / "test").mkdir(parents=True)
    table.to_csv(root / "tables" / "table1.csv", index=False)
    (root / "tables" / "table1.md").write_text(table.to_markdown(index=False))
    xr.Dataset({"u": (("y", "x"), field)}, attrs={"created": str(root)}).to_netcdf(
        root / "data" / "test" / "u_x1.nc"
    )
    return root


TABLE = pd.DataFrame(
    {"method": ["liif", "nhcsr"], "scale": [2, 4], "mse": [0.125, 0.25], "l2": [1.5, 2.5]}
)
FIELD = np.arange(12.0).reshape(3, 4)


def statuses(cr, before, after):
    return {rel: status for rel, status, _ in cr.compare(before, after)}


def test_equal_trees_pass(cr, tmp_path):
    before = write_tree(tmp_path / "b", TABLE, FIELD)
    after = write_tree(tmp_path / "a", TABLE, FIELD)
    got = statuses(cr, before, after)
    assert got["tables/table1.csv"] == "identical"
    # The NetCDF files differ in an attribute only.
    assert got["data/test/u_x1.nc"] == "same values"
    assert cr.main([str(before), str(after)]) == 0


def test_added_rows_and_columns_keep_shared_cells(cr, tmp_path):
    before = write_tree(tmp_path / "b", TABLE, FIELD)
    grown = pd.concat(
        [TABLE, pd.DataFrame({"method": ["lod"], "scale": [2], "mse": [0.5], "l2": [3.0]})]
    ).assign(energy=[9.0, 8.0, 7.0])
    after = write_tree(tmp_path / "a", grown, FIELD)
    got = statuses(cr, before, after)
    assert got["tables/table1.csv"] == "same shared cells"
    assert got["tables/table1.md"] == "text differs"
    assert cr.main([str(before), str(after)]) == 0


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.assign(mse=[0.125, 0.2500001]),
        lambda t: t.iloc[:1],
        lambda t: t.assign(scale=[2, 8]),
    ],
    ids=["changed cell", "lost row", "changed label"],
)
def test_a_changed_value_fails(cr, tmp_path, change):
    before = write_tree(tmp_path / "b", TABLE, FIELD)
    after = write_tree(tmp_path / "a", change(TABLE), FIELD)
    assert statuses(cr, before, after)["tables/table1.csv"] == "differs"
    assert cr.main([str(before), str(after)]) == 1


def test_a_changed_field_fails(cr, tmp_path):
    before = write_tree(tmp_path / "b", TABLE, FIELD)
    after = write_tree(tmp_path / "a", TABLE, FIELD + 1e-12 * (FIELD == 5))
    assert statuses(cr, before, after)["data/test/u_x1.nc"] == "differs"
    assert cr.main([str(before), str(after)]) == 1


def test_missing_directory_is_named(cr, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cr.main([str(tmp_path / "nowhere"), str(tmp_path)])
    assert "nowhere is not a directory" in capsys.readouterr().err


def test_measured_times_are_not_compared(cr, tmp_path):
    timed = TABLE.assign(seconds=[1.0, 2.0])
    before = write_tree(tmp_path / "b", timed, FIELD)
    after = write_tree(tmp_path / "a", timed.assign(seconds=[1.5, 2.5]), FIELD)
    assert statuses(cr, before, after)["tables/table1.csv"] == "same shared cells"
    assert cr.main([str(before), str(after), "--measured", "^$"]) == 1


def test_checkpoints_compare_their_weights(cr, tmp_path):
    import torch

    weights = {"w": torch.arange(4.0), "b": torch.zeros(2)}
    for side, seconds, w in (("b", 1.0, weights), ("a", 2.0, weights), ("c", 1.0, None)):
        w = w or {**weights, "b": torch.tensor([0.0, 1e-7])}
        path = tmp_path / side / "models" / "liif" / "checkpoint.pt"
        path.parent.mkdir(parents=True)
        torch.save({"state_dict": w, "iteration": 8, "seconds": seconds}, path)
    rel = "models/liif/checkpoint.pt"
    assert statuses(cr, tmp_path / "b", tmp_path / "a")[rel] == "same weights"
    assert statuses(cr, tmp_path / "b", tmp_path / "c")[rel] == "differs"
