"""Train one model: ``python -m fesr.train --model NAME --config-json CFG --data DIR --out DIR``.

Adam with a MultiStepLR schedule, batch size and iterations from ``config["training"]``; GPU when
present (``amp``: bfloat16 autocast on the GPU only), CPU otherwise. The loss is the method's
``training_loss(batch, step)``. Every ``val_every`` steps the validation loss is measured: the
L1 error of ``query`` at fixed nodes of fixed validation samples at every training scale (the
same metric for every method and variant, so that e.g. Fig. 9 compares with/without SCS fairly;
a method may define ``validation_loss(batch)`` instead). Every ``checkpoint_every`` steps the full
state (weights, optimizer, scheduler, RNGs, history) goes to ``{out}/resume.pt``; a rerun with
the same config resumes from it exactly, because the batch stream is a pure function of the
iteration. The history's first row (iteration 0) is the validation loss of the untrained model.
At the end ``{out}/checkpoint.pt`` and ``{out}/history.csv`` are written and the
resume file removed. Deterministic on CPU for a given seed and thread count. A model with nothing
to learn (bicubic) runs the same loop for zero iterations: its history is the one row of the
untrained model.

The config is the validated pipeline config or a model's train_config.json
(``fesr.train_plan.train_config``): every key is read as it is, with no fallback; the schema
holds the required keys and defaults, and ``main`` runs its validation
(``fesr.train_plan.train_config_errors``) before any work.

Patch training (``training.patch``): training batches are P x P crops of the fields
(``fesr.data.sampling``); validation stays on whole fields, as evaluation does. The train and val
splits are held in memory as float32 when each fits ``training.preload_mb`` (else the decoded
sample cache of ``cache_mb`` is used). history.csv has the columns iteration, loss, val_loss, lr,
seconds, then every key of the dict ``training_loss`` returns (e.g. l1, scs), in first-seen order.

Physics variants (``fesr.model_names``): a model with an ``h1``/``energy`` token trains with
``fesr.element_loss.training_loss_with_elements``: its method's own loss plus the config's
``physics_loss`` weight times the element-gradient term G on ``physics_loss.elements`` sampled HR
elements per sample (logged as the column ``h1`` or ``energy``; the validation loss stays the L1
of every model). A model with a ``hom`` token reads ``u_x1_geometric.nc`` as its LR field in the
train and val splits (``input_field``, recorded in the checkpoint's ``data``). Both settings enter
the run hash only for such a model, so every other model's hash and batches are what they were.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fesr.checkpoint import (
    config_hash,
    load_checkpoint,
    resolve_device,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from fesr.cli import MissingInputError, UsageError, check_match, run_main
from fesr.data.dataset import SplitReader, check_lr_file_mean, lr_field_path, u_scale
from fesr.data.sampling import BatchBuilder, TrainBatches, validation_batches
from fesr.element_loss import check_element_loss, training_loss_with_elements
from fesr.model_names import DEFAULT_INPUT_FIELD, DEFAULT_LOSS, training_seed
from fesr.models.base import SRModel
from fesr.models.registry import build_from_resolved, parse_model_name, resolve_model_config
from fesr.train_plan import element_loss_settings, train_config_errors

HISTORY_COLUMNS = ["iteration", "loss", "val_loss", "lr", "seconds"]
# Keys that do not change what is learned: a run may resume across a change of these.
RUNTIME_KEYS = (
    "device",
    "num_workers",
    "val_every",
    "checkpoint_every",
    "val_samples",
    "preload_mb",
)


def set_threads(threads: int) -> None:
    """Intra-op threads = the job's cores, one inter-op thread: with Snakemake running one job per
    core, more threads than cores only oversubscribe (and the results depend on the count)."""
    torch.set_num_threads(int(threads))
    with contextlib.suppress(RuntimeError):  # settable once, before any parallel work
        torch.set_num_interop_threads(1)


def _to(batch: dict, device) -> dict:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


@torch.no_grad()
def validation_loss(model, batches: list, device, seed: int) -> float:
    """Mean over the fixed validation batches of the L1 error of ``query`` (or the method's own
    ``validation_loss``); RNG use inside is isolated so the training stream is unaffected."""
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    losses = []
    # The batches hold the same samples at every scale, and encode() sees only the inputs: encode
    # once and query each scale (same values; 4x less encoder work with 4 training scales).
    reuse = type(model).query is SRModel.query
    inputs, state = None, None
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for cpu_batch in batches:
            batch = _to(cpu_batch, device)
            if hasattr(model, "validation_loss"):
                loss = model.validation_loss(batch)
            else:
                if not reuse:  # a method with its own query
                    pred = model.query(batch, batch["coords"], batch["cell"])
                else:
                    same = inputs is not None and all(
                        torch.equal(batch[k], inputs[k]) for k in ("lr", "image")
                    )
                    if not same:
                        inputs, state = batch, model.encode(batch)
                    pred = model.query_encoded(state, batch["coords"], batch["cell"])
                loss = torch.nn.functional.l1_loss(pred.float(), batch["target"].float())
            losses.append(float(loss))
    model.train(was_training)
    return float(np.mean(losses))


def write_history(path: Path, rows: torch.Tensor, columns=HISTORY_COLUMNS) -> None:
    """history.csv (iteration, loss, val_loss, lr, seconds, then the method's logged terms),
    written atomically."""
    df = pd.DataFrame(rows.numpy().reshape(-1, len(columns)), columns=list(columns))
    df["iteration"] = df["iteration"].astype(np.int64)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False, float_format="%.9g")
    tmp.replace(path)


@dataclass
class History:
    """One row per step: the fixed columns, then the method's logged terms (NaN where a term was
    not logged at that step; a term first logged later adds a column, earlier rows get NaN)."""

    columns: list = field(default_factory=lambda: list(HISTORY_COLUMNS))
    rows: list = field(default_factory=list)

    def append(self, fixed: list, logs: dict) -> None:
        for key in logs:
            if key not in self.columns:
                self.columns.append(key)
                for row in self.rows:
                    row.append(math.nan)
        extra = [float(logs.get(c, math.nan)) for c in self.columns[len(HISTORY_COLUMNS) :]]
        self.rows.append([*fixed, *extra])

    def tensor(self) -> torch.Tensor:
        return torch.tensor(self.rows, dtype=torch.float64).reshape(-1, len(self.columns))

    def write(self, path: Path) -> None:
        write_history(path, self.tensor(), self.columns)


@dataclass
class Run:
    """The state of one training run, built by ``train`` and consumed by ``_loop``."""

    name: str
    model: torch.nn.Module
    params: list
    tcfg: dict
    device: torch.device
    builder: BatchBuilder
    val_batches: list
    seed: int
    common: dict  # the checkpoint's metadata (model config, data, config hash, ...)
    out_dir: Path
    stop_at: int | None = None
    progress: bool = True
    loss_mode: str = DEFAULT_LOSS  # fesr.element_loss.LOSS_MODES
    loss_weight: float = 0.0  # of the element-gradient term (loss_mode other than l1)

    @property
    def iterations(self) -> int:
        """The configured iterations; none for a model with nothing to learn."""
        return int(self.tcfg["iterations"]) if self.params else 0

    @property
    def final_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def resume_path(self) -> Path:
        return self.out_dir / "resume.pt"

    @property
    def history_path(self) -> Path:
        return self.out_dir / "history.csv"


def train(
    model_name: str,
    config: dict,
    data_dir,
    out_dir,
    *,
    device: str | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    cache_mb: int = 1024,
) -> Path:
    """Train ``model_name`` on ``data_dir``'s train split; returns ``{out_dir}/checkpoint.pt``.

    ``config``: validated (``main`` does it). ``stop_at`` ends the run after that many completed
    iterations, leaving the resume file as an interruption would (tests, time-boxed jobs).
    ``cache_mb`` bounds the decoded-sample cache used when a split does not fit
    ``training.preload_mb``.
    """
    tcfg = dict(config["training"])
    # replica k of a model ({model}-seed{k}) trains with the config seed + k; the data keep theirs
    seed = training_seed(model_name, config["seed"])
    model_cfg = resolve_model_config(model_name, config)
    element_loss = element_loss_settings(model_name, config)
    check_element_loss(model_cfg["method"], *element_loss)
    input_field = model_cfg.get("input_field", DEFAULT_INPUT_FIELD)
    dev = resolve_device(device or tcfg["device"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_scales = [float(a) for a in tcfg["train_scales"]]
    scale = u_scale(data_dir, train_scales)
    train_reader, val_reader = open_splits(
        data_dir, train_scales, tcfg["preload_mb"], cache_mb, input_field
    )
    try:
        check_shapes(config, data_dir, (train_reader, val_reader))
        chash = run_hash(model_cfg, tcfg, seed, scale, len(train_reader), element_loss)
        final_path = out_dir / "checkpoint.pt"
        if is_trained(final_path, chash):
            print(f"{final_path}: already trained with this config; nothing to do")
            return final_path
        with deterministic_on_cpu(dev):
            seed_everything(seed)
            run = build_run(
                model_name,
                model_cfg,
                config,
                dev,
                data_dir,
                (train_reader, val_reader),
                scale,
                seed,
                chash,
                out_dir,
                element_loss,
            )
            run.stop_at, run.progress = stop_at, progress
            return _loop(run)
    finally:
        train_reader.close()
        val_reader.close()


def open_splits(
    data_dir, train_scales, preload_mb: int, cache_mb: int, input_field: str = DEFAULT_INPUT_FIELD
):
    """The train and val readers at scale 1 (the LR file of ``input_field``) and the training
    scales, held in memory as float32 when each fits ``preload_mb`` (the train split first); else
    train decodes through a cache of ``cache_mb``."""
    train_reader = SplitReader(
        data_dir,
        "train",
        [1, *train_scales],
        cache_bytes=int(cache_mb) << 20,
        input_field=input_field,
    )
    val_reader = SplitReader(
        data_dir, "val", [1, *train_scales], cache_bytes=0, input_field=input_field
    )
    budget = int(preload_mb) << 20
    if train_reader.preload(budget):
        val_reader.preload(budget - train_reader.nbytes())
    return train_reader, val_reader


def check_shapes(config: dict, data_dir, readers) -> None:
    """Every split has the config's coefficient grid E and LR node count."""
    for reader in readers:
        if (
            reader.E != int(config["physics"]["E"])
            or reader.node_sizes[1] != int(config["lr_n"]) + 1
        ):
            raise ValueError(
                f"{data_dir}/{reader.split}: E={reader.E}, LR nodes {reader.node_sizes[1]}; the "
                f"config expects E={config['physics']['E']}, lr_n={config['lr_n']}"
            )


def run_hash(
    model_cfg: dict,
    tcfg: dict,
    seed: int,
    scale: float,
    n_train: int,
    element_loss: tuple = (DEFAULT_LOSS, 0.0, 0),
) -> str:
    """The hash of everything that decides what is learned (``RUNTIME_KEYS`` left out): a
    finished run or a resume file with another hash belongs to another run. ``element_loss``
    (mode, weight, elements; ``fesr.train_plan.element_loss_settings``) enters only when the mode
    is not l1, and ``input_field`` through ``model_cfg`` only when set: a model without physics
    tokens hashes the dict it always did."""
    learned = {k: v for k, v in tcfg.items() if k not in RUNTIME_KEYS}
    facts = {
        "model_cfg": model_cfg,
        "training": learned,
        "seed": seed,
        "u_scale": scale,
        "n_train": n_train,
    }
    mode, weight, elements = element_loss
    if mode != DEFAULT_LOSS:
        facts["physics_loss"] = {"weight": float(weight), "elements": int(elements)}
    return config_hash(facts)


def is_trained(final_path: Path, chash: str) -> bool:
    """A complete checkpoint of the run ``chash`` is at ``final_path``."""
    if not final_path.exists():
        return False
    try:
        done = load_checkpoint(final_path)
    except ValueError:
        return False
    return bool(done.get("complete")) and done.get("config_hash") == chash


@contextlib.contextmanager
def deterministic_on_cpu(dev: torch.device):
    """Bitwise determinism on CPU, restored afterwards. On the GPU some kernels (grid_sample's
    backward) have no deterministic version, and forcing the others only costs speed: left to
    cuDNN's defaults."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def seed_everything(seed: int) -> None:
    """The torch, numpy and python RNGs (model initialisation and ``training_loss`` draw)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def build_run(
    model_name,
    model_cfg,
    config,
    dev,
    data_dir,
    readers,
    scale,
    seed,
    chash,
    out_dir,
    element_loss=(DEFAULT_LOSS, 0.0, 0),
) -> Run:
    """The model (initialised from the seeded RNG), its training batch builder (with
    ``element_loss``'s sampled elements), the fixed validation batches (whole fields, as
    evaluation, no elements) and the checkpoint's metadata."""
    mode, weight, elements = element_loss
    tcfg = dict(config["training"])
    train_reader, val_reader = readers
    train_scales = [float(a) for a in tcfg["train_scales"]]
    contrast = [float(c) for c in config["physics"]["contrast"]]
    model = build_from_resolved(model_cfg).to(dev)
    full_field = bool(getattr(model, "needs_full_field", False))
    builder = BatchBuilder(
        train_reader,
        scale,
        contrast,
        model.uses_coefficient,
        tcfg["sample_q"],
        full_field=full_field,
        patch=tcfg["patch"],
        elements=elements if mode != DEFAULT_LOSS else 0,
    )
    val_builder = BatchBuilder(
        val_reader,
        scale,
        contrast,
        model.uses_coefficient,
        tcfg["sample_q"],
        full_field=full_field,
    )
    val_batches = validation_batches(val_builder, train_scales, tcfg["val_samples"], seed)
    common = dict(
        model_name=model_name,
        method=model_cfg["method"],
        model_cfg=model_cfg,
        u_scale=scale,
        contrast=contrast,
        physics=dict(config["physics"]),  # predict and metrics check data against it
        config_hash=chash,
        train_config=tcfg,
        seed=seed,
        data={
            "dir": str(data_dir),
            "n_train": len(train_reader),
            "n_val": len(val_reader),
            "E": train_reader.E,
            "lr_n": train_reader.node_sizes[1] - 1,
            "input_field": train_reader.input_field,
        },
    )
    if mode != DEFAULT_LOSS:
        common["physics_loss"] = {"loss": mode, "weight": float(weight), "elements": int(elements)}
    return Run(
        name=model_name,
        model=model,
        params=[p for p in model.parameters() if p.requires_grad],
        tcfg=tcfg,
        device=dev,
        builder=builder,
        val_batches=val_batches,
        seed=seed,
        common=common,
        out_dir=out_dir,
        loss_mode=mode,
        loss_weight=float(weight),
    )


def _loop(run: Run) -> Path:
    model, tcfg, dev, seed, common = run.model, run.tcfg, run.device, run.seed, run.common
    final_path, resume_path = run.final_path, run.resume_path
    iterations = run.iterations
    # fused: one kernel for all parameters (5x faster than the per-tensor loop on the CPU for
    # these ~50 small tensors); deterministic like the loop. Nothing to learn: no optimizer.
    opt = torch.optim.Adam(run.params, lr=float(tcfg["lr"]), fused=True) if run.params else None
    sched = (
        torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=[int(m) for m in tcfg["lr_milestones"]], gamma=float(tcfg["lr_gamma"])
        )
        if opt is not None
        else None
    )
    stream = TrainBatches(run.builder, tcfg["train_scales"], tcfg["batch_size"], seed)
    start, history, seconds = 0, History(), 0.0
    if resume_path.exists() and opt is not None:
        try:
            # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
            state = load_checkpoint(resume_path, map_location="cpu")
        except ValueError as err:
            print(f"ignoring unreadable resume file: {err}", file=sys.stderr)
            state = None
        if state is not None and state.get("config_hash") == common["config_hash"]:
            model.load_state_dict(state["state_dict"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            stream.check_state(state["sampler"])
            set_rng_states(state["rng"])
            start, seconds = int(state["iteration"]), float(state["seconds"])
            history = History(
                list(state.get("history_columns", HISTORY_COLUMNS)), state["history"].tolist()
            )
            print(f"resuming {common['model_name']} at iteration {start}/{iterations}")
        elif state is not None:
            print(f"{resume_path}: trained with another config; starting afresh", file=sys.stderr)
    stop = iterations if run.stop_at is None else min(iterations, int(run.stop_at))
    amp = bool(tcfg["amp"]) and dev.type == "cuda"
    workers = int(tcfg["num_workers"])
    stream.start, stream.stop = start, stop
    batches = (
        torch.utils.data.DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            pin_memory=dev.type == "cuda",
            # its own generator: drawing the workers' base seed must not move the global
            # torch RNG that training_loss uses (resume and worker count would change results)
            generator=torch.Generator().manual_seed(seed),
        )
        if workers > 0 and stop > start
        else iter(stream)
    )

    def lr() -> float:
        return opt.param_groups[0]["lr"] if opt is not None else 0.0

    def save(path, it, complete):
        save_checkpoint(
            path,
            **common,
            state_dict=model.state_dict(),
            optimizer=opt.state_dict() if opt is not None else {},
            scheduler=sched.state_dict() if sched is not None else {},
            iteration=it,
            complete=complete,
            rng=rng_states(),
            sampler=stream.state_dict() if opt is not None else {},
            history=history.tensor(),
            history_columns=list(history.columns),
            seconds=seconds,
        )

    model.train()
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=iterations,
        initial=start,
        desc=f"train {common['model_name']}",
        disable=not run.progress,
        mininterval=1 if tty else 30,
        dynamic_ncols=True,
    )
    t_last = time.perf_counter()
    if start == 0 and not history.rows:
        # the curve's first point is the untrained model (iteration 0, no training loss): the
        # validation RNG is forked, so the training stream is unchanged
        val = validation_loss(model, run.val_batches, dev, seed)
        seconds, t_last = time.perf_counter() - t_last, time.perf_counter()
        history.append([0, math.nan, val, lr(), seconds], {})
        if not run.progress or not tty:
            print(f"iteration 0/{iterations}: val_loss {val:.4g} (untrained)", flush=True)
    for it, cpu_batch in zip(range(start, stop), batches, strict=False):
        batch = _to(cpu_batch, dev)
        lr_now = lr()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
            loss, logs = training_loss_with_elements(
                model, batch, step=it, mode=run.loss_mode, weight=run.loss_weight
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{common['model_name']}: non-finite training loss {float(loss)} at iteration {it}"
            )
        loss.backward()
        opt.step()
        sched.step()
        done = it + 1
        val = math.nan
        if done % int(tcfg["val_every"]) == 0 or done == iterations:
            val = validation_loss(model, run.val_batches, dev, seed)
        now = time.perf_counter()
        seconds += now - t_last
        t_last = now
        loss_value = float(loss.detach())
        history.append([done, loss_value, val, lr_now, seconds], logs or {})
        bar.update(1)
        bar.set_postfix(
            loss=f"{loss_value:.3g}", val=f"{val:.3g}" if val == val else "-", refresh=False
        )
        if not math.isnan(val) and (bar.disable or not tty):  # a line per validation in logs
            print(
                f"iteration {done}/{iterations}: loss {loss_value:.4g}, val_loss {val:.4g}, "
                f"lr {lr_now:.3g}, {seconds:.1f} s",
                flush=True,
            )
        if done % int(tcfg["checkpoint_every"]) == 0 and done < iterations:
            save(resume_path, done, False)
            history.write(run.history_path)
    bar.close()
    done = int(history.rows[-1][0]) if history.rows else start
    if (
        done < iterations
    ):  # stopped early (stop_at): leave the resume state as an interruption would
        save(resume_path, done, False)
        return resume_path
    save(final_path, iterations, True)
    history.write(run.history_path)
    resume_path.unlink(missing_ok=True)
    return final_path


def _nc_attrs(path: Path) -> dict:
    import netCDF4

    try:
        with netCDF4.Dataset(str(path), "r") as ds:
            return {k: ds.getncattr(k) for k in ds.ncattrs()}
    except OSError as err:
        raise UsageError(f"{path}: not a readable NetCDF file ({err})") from None


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def check_train_inputs(model: str, config: dict, data_dir: Path, out_dir: Path, device) -> None:
    """Refuse, before any work, what a hand-run training would get wrong (UsageError, one line
    naming both sides): an invalid model name or a config lacking its settings; a CUDA device
    that is not there; an output folder named after, or holding a checkpoint of, another model;
    train/val files missing or made for another split, seed, scale, E or contrast."""
    try:
        resolve_model_config(model, config)
    except (ValueError, KeyError) as err:
        raise UsageError(str(err).strip("'\"")) from None
    resolve_device(device or config["training"]["device"])
    out_dir = Path(out_dir)
    try:
        parse_model_name(out_dir.name)
    except ValueError:
        pass  # a folder not named after a model: the user's choice
    else:
        check_match("model", ("--model", model), (f"--out folder {out_dir}", out_dir.name))
    for name in ("checkpoint.pt", "resume.pt"):
        if (out_dir / name).is_file():
            try:
                have = load_checkpoint(out_dir / name).get("model_name")
            except ValueError:
                continue  # unreadable: training replaces it, as it always did
            check_match("model", ("--model", model), (str(out_dir / name), have))
    expect = {
        "seed": int(config["seed"]),
        "E": int(config["physics"]["E"]),
        "contrast": [float(c) for c in config["physics"]["contrast"]],
    }
    scales = [int(a) for a in config["training"]["train_scales"]]
    input_field = resolve_model_config(model, config).get("input_field", DEFAULT_INPUT_FIELD)
    for split in ("train", "val"):
        files = [(data_dir / split / f"u_x{a}.nc", a) for a in scales]
        files += [(lr_field_path(data_dir, split, input_field), 1)]
        files += [(data_dir / split / "coefficient.nc", None)]
        for path, alpha in files:
            if not path.is_file():
                raise MissingInputError(
                    f"dataset file {path} does not exist (build it with the data rules)"
                )
            attrs = {k: _plain(v) for k, v in _nc_attrs(path).items()}
            src = f"dataset file {path}"
            if alpha == 1:
                try:
                    check_lr_file_mean(path, attrs.get("effective_mean"), input_field)
                except ValueError as err:
                    raise UsageError(f"model '{model}': {err}") from None
            if "split" in attrs:
                check_match("split", (f"folder {data_dir / split}", split), (src, attrs["split"]))
            if alpha is not None and "alpha" in attrs:
                check_match("scale", (f"file name {path.name}", alpha), (src, int(attrs["alpha"])))
            for key, want in expect.items():
                if key in attrs:
                    have = attrs[key]
                    have = [float(c) for c in have] if key == "contrast" else int(have)
                    check_match(key, ("the config", want), (src, have))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model name, e.g. liif or nhcsr-no_scs")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--config-json", type=Path, help="config (JSON) as written by the workflow")
    src.add_argument("--preset", help="load config.yaml merged with this preset (name or path)")
    ap.add_argument("--data", type=Path, default=Path("results/data"))
    ap.add_argument("--out", type=Path, required=True, help="output folder of this model")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--stop-at", type=int, default=None, help="stop after this many iterations")
    ap.add_argument("--cache-mb", type=int, default=1024, help="decoded-sample cache (MiB)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.config_json is not None:
        try:
            with open(args.config_json) as fh:
                config = json.load(fh)
        except (OSError, json.JSONDecodeError) as err:
            raise UsageError(f"--config-json {args.config_json}: {err}") from None
    else:
        from fesr.config import load_config

        try:
            config = load_config(args.preset)
        except (OSError, ValueError) as err:
            raise UsageError(f"--preset {args.preset}: {err}") from None
    errors = train_config_errors(config)
    if errors:
        source = args.config_json or args.preset
        raise UsageError(f"{source}: invalid configuration: " + "; ".join(errors))
    check_train_inputs(args.model, config, args.data, args.out, args.device)
    if args.threads:
        set_threads(args.threads)
    path = train(
        args.model,
        config,
        args.data,
        args.out,
        device=args.device,
        stop_at=args.stop_at,
        progress=not args.no_progress,
        cache_mb=args.cache_mb,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main("python -m fesr.train", main))
