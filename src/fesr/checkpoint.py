"""Checkpoints: one self-contained file per trained model, loadable with ``weights_only=True``.

Keys: ``format`` / ``version`` (tag), ``model_name``, ``method``, ``model_cfg`` (the output of
``resolve_model_config``: enough to rebuild the model), ``state_dict``, ``optimizer``,
``scheduler``, ``iteration`` (completed steps), ``complete``, ``rng`` (torch, cuda, numpy,
python), ``sampler``, ``u_scale``, ``contrast``, ``physics`` (E, contrast, p_high, source of the
data trained on), ``config_hash``, ``train_config``, ``history``
(float64 tensor, one row per step: iteration, loss, val_loss, lr, seconds).
Only tensors and plain Python containers are stored, so no pickled class is ever trusted.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

FORMAT = "fesr-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("model_name", "model_cfg", "state_dict", "iteration", "u_scale", "contrast")


def config_hash(obj) -> str:
    """Stable hash of a JSON-able object (sorted keys): the config a checkpoint was trained on."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rng_states() -> dict:
    """Every RNG a training step may touch, in weights_only-loadable form."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np_state = states["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["key"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def current_umask() -> int:
    """The process umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_checkpoint(path, **content) -> Path:
    """Write ``content`` (plus the format tag) to ``path`` atomically: a temporary file in the same
    directory, then ``os.replace``, so an interruption never leaves a half-written checkpoint. On
    any exception the temporary file is removed, and a failure of the file system (full,
    read-only) is a ``fesr.cli.OutputError`` naming ``path`` and the cause, not torch's
    "file write failed"."""
    from fesr.cli import OutputError, remove_quietly, write_failure

    path = Path(path)
    missing = [k for k in REQUIRED_KEYS if k not in content]
    if missing:
        raise ValueError(f"save_checkpoint({path}): missing keys {missing}")
    payload = {"format": FORMAT, "version": VERSION, **content}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise (write_failure(err, path) or OutputError(path, err.errno or errno.EIO)) from None
    try:
        # mkstemp creates mode 0600; give the file the mode open() would (0666 less the umask),
        # so group members of a shared project can read the models like every other output.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        failure = write_failure(err, path, tmp) if isinstance(err, Exception) else None
        remove_quietly(tmp)
        if failure is not None:
            raise failure from None
        raise
    return path


def resolve_device(choice: str | None) -> torch.device:
    """'auto' (the GPU when present), 'cpu', 'cuda' or 'cuda:N'; a requested GPU that is not
    there is a UsageError saying so (the one check every entry point shares)."""
    from fesr.cli import UsageError

    choice = choice or "auto"
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(choice)
    except RuntimeError:
        raise UsageError(f"device must be auto, cpu or cuda, got {choice!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"device must be auto, cpu or cuda, got {choice!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {choice}: no CUDA device is available on this machine "
            "(use --device cpu or auto)"
        )
    return dev


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by ``save_checkpoint``; a missing file raises FileNotFoundError,
    a corrupt or foreign one a ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    resolve_device(str(map_location))  # a missing GPU is said as such, not as a corrupt file
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        zipfile.BadZipFile,
        OSError,
        ValueError,
        AttributeError,
        TypeError,
        KeyError,
        IndexError,
    ) as err:
        # torch's own message suggests weights_only=False, which would run the file's code:
        # never relayed.
        text = str(err)
        if "GLOBAL" in text:  # a class or function reference: what a code-running pickle needs
            raise ValueError(
                f"{path}: refused: it holds pickled Python objects (classes or functions), which "
                "no fesr checkpoint does; loading them could run code the file carries"
            ) from None
        noise = ("weights_only", "Weights only", "Check the documentation", "Please file an issue")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        lines = [ln for ln in lines if not any(w in ln for w in noise)]
        first = lines[0].removeprefix("WeightsUnpickler error:").strip() if lines else ""
        first = first or type(err).__name__
        raise ValueError(
            f"{path}: not a readable fesr checkpoint (corrupt, truncated or written by something "
            f"else): {first}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not an fesr checkpoint (no format tag '{FORMAT}'; a foreign torch file?)"
        )
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')}; expected {VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks keys {missing}")
    return ckpt


def load_model(path, device="cpu"):
    """(model, ckpt): the trained model rebuilt from the checkpoint's model_cfg, in eval mode."""
    from fesr.models.registry import build_from_resolved

    ckpt = load_checkpoint(path, map_location=device)
    model = build_from_resolved(ckpt["model_cfg"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ValueError(
            f"{path}: weights do not fit model '{ckpt['model_name']}' as built from its config: "
            f"{str(err).splitlines()[0]}"
        ) from None
    return model.to(device).eval(), ckpt
