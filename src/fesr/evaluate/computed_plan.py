"""Which fields other solvers compute beside the learned SR, and where they land (pure Python).

Three families, configured under ``baselines`` and scored by ``fesr.evaluate.fe_baselines
--computed`` into the FE baseline parts that Table I and table_cost read:

* PG-LOD (``fesr.fem.lod``): ``lod_k{k}`` for every k in ``baselines.lod.layers`` on the fine
  mesh h = 1/E, ``lod_k{k}_h{n}`` for every ``baselines.lod.finer`` entry, and ``lod_coarse``,
  the coarse part u_H of the run with the most layers, Q1-interpolated. One job per (variant,
  split) computes the correctors of each map once and writes every scale.
* The FE solver stopped early (``fesr.fem.partial_solve cheap``): ``fe_x{alpha}_it{k}``, CG with
  the configured preconditioner from zero, stopped after k in ``baselines.fe_iterations``.
* SR corrected (``fesr.fem.partial_solve correct``): ``{model}+cg{k}`` and ``{model}+smooth{nu}``
  for the models in ``baselines.corrections.models`` at ``baselines.corrections.scales``.
"""

from __future__ import annotations

from fesr.evaluate.plan import eval_scales, split_scales

COMPUTED = "results/computed"


def baselines(config) -> dict:
    return config["baselines"]


def lod_variants(config) -> dict[str, tuple[int, int | None]]:
    """LOD variant name -> (layers k, fine mesh n or None for n = E)."""
    cfg = baselines(config)["lod"]
    out = {f"lod_k{k}": (int(k), None) for k in cfg["layers"]}
    for item in cfg["finer"]:
        k, n = int(item["layers"]), int(item["fine_n"])
        out[f"lod_k{k}_h{n}"] = (k, n)
    return out


def lod_coarse_source(config) -> str | None:
    """The LOD variant whose u_H is the ``lod_coarse`` row: the most layers on h = 1/E."""
    layers = [int(k) for k in baselines(config)["lod"]["layers"]]
    return f"lod_k{max(layers)}" if layers else None


def lod_dir(variant, split) -> str:
    return f"{COMPUTED}/{variant}/{split}"


def computed_file(name, split, scale) -> str:
    return f"{COMPUTED}/{name}/{split}/u_x{scale}.nc"


def lod_scales(config, split) -> list[int]:
    """The scales an LOD job writes: every evaluation scale the split holds."""
    return [s for s in eval_scales(config) if s in split_scales(config, split)]


def partial_names(config, alpha) -> list[str]:
    return [f"fe_x{alpha}_it{k}" for k in baselines(config)["fe_iterations"]]


def correction_variants(config) -> list[str]:
    cfg = baselines(config)["corrections"]
    return [f"cg{k}" for k in cfg["cg"]] + [f"smooth{nu}" for nu in cfg["smooth"]]


def correction_names(config, model) -> list[str]:
    return [f"{model}+{v}" for v in correction_variants(config)]


def corrected(config, split, alpha) -> list[str]:
    """The models whose (split, alpha) predictions are corrected."""
    cfg = baselines(config)["corrections"]
    if int(alpha) not in [int(s) for s in cfg["scales"]] or not correction_variants(config):
        return []
    return list(cfg["models"])


def computed_rows(config, split, alpha) -> dict[str, str]:
    """Approach name -> the field file fe_baselines scores at (split, alpha)."""
    alpha = int(alpha)
    out = {name: computed_file(name, split, alpha) for name in lod_variants(config)}
    source = lod_coarse_source(config)
    if source is not None:
        out["lod_coarse"] = f"{lod_dir(source, split)}/u_x1.nc"
    out.update({name: computed_file(name, split, alpha) for name in partial_names(config, alpha)})
    for model in corrected(config, split, alpha):
        for name in correction_names(config, model):
            out[name] = computed_file(name, split, alpha)
    return out


def computed_inputs(config, split, alpha) -> list[str]:
    """The files and LOD directories the fe_baselines job of (split, alpha) waits for."""
    alpha = int(alpha)
    lods = [lod_dir(v, split) for v in lod_variants(config)]
    partial = [computed_file(n, split, alpha) for n in partial_names(config, alpha)]
    fixes = [
        computed_file(n, split, alpha)
        for m in corrected(config, split, alpha)
        for n in correction_names(config, m)
    ]
    return lods + partial + fixes
