"""How large the element-gradient term G is against the L1 loss: the centre of the weight grid
that ``benchmarks/sweep_physics_loss_weight.py`` sweeps on the validation split.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_physics_loss_weight.py \
        --data study/results/data --models study/results/models

The quick preset's models (``--methods``), seeded as training seeds them, on the first
``--batches`` training batches of ``--data``'s train split (the training stream: batch size,
sample_q, patch and scales of the preset, ``physics_loss.elements`` elements per sample). Per
method it prints, side by side, the mean over those batches of the L1 loss of the sampled nodes
and of G for ``h1`` and ``energy`` (``fesr.element_loss``), and the weight that makes weight * G
equal the L1 loss: at initialisation, and for the trained checkpoint ``--models/{method}`` when it
exists. No training happens here: the weights it prints are scale-matched; the schema's are
chosen on the validation split by the sweep.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def measure(model, batches) -> dict:
    import torch

    from fesr.element_loss import element_term

    sums = {"l1": 0.0, "h1": 0.0, "energy": 0.0}
    with torch.no_grad():
        for batch in batches:
            state = model.encode(batch)
            pred = model.query_encoded(state, batch["coords"], batch["cell"])
            sums["l1"] += float(torch.nn.functional.l1_loss(pred, batch["target"]))
            sums["h1"] += float(element_term(model, state, batch, "l1+h1"))
            sums["energy"] += float(element_term(model, state, batch, "l1+energy"))
    return {k: v / len(batches) for k, v in sums.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a dataset folder (train split)")
    ap.add_argument("--models", type=Path, default=None, help="folder of trained checkpoints")
    ap.add_argument("--methods", nargs="+", default=["nhcsr", "liif", "lte", "metasr"])
    ap.add_argument("--batches", type=int, default=32, help="training batches per method")
    args = ap.parse_args()

    import torch

    from fesr.checkpoint import load_model
    from fesr.config import load_config
    from fesr.data import BatchBuilder, SplitReader, u_scale
    from fesr.data.sampling import TrainBatches
    from fesr.models import registry
    from fesr.train import seed_everything
    from fesr.train_plan import physics_loss_settings

    torch.set_num_threads(1)
    config = copy.deepcopy(load_config("quick"))
    tcfg = config["training"]
    elements = int(physics_loss_settings(config)["elements"])
    scales = [int(a) for a in tcfg["train_scales"]]
    scale = u_scale(args.data, scales)
    reader = SplitReader(args.data, "train", [1, *scales])
    print(
        f"{args.data}/train: {len(reader)} samples, u_scale {scale:.4g}; quick preset batch "
        f"{tcfg['batch_size']}, sample_q {tcfg['sample_q']}, patch {tcfg['patch']}, scales "
        f"{scales}, {elements} elements per sample, {args.batches} batches"
    )
    head = f"{'method':8} {'state':8} {'L1':>9} {'G h1':>9} {'G energy':>9}"
    print(head + f" {'L1/G h1':>9} {'L1/G energy':>11}")
    for method in args.methods:
        seed_everything(int(config["seed"]))
        fresh = registry.build_model(method, config).eval()
        states = [("init", fresh)]
        ckpt = args.models / method / "checkpoint.pt" if args.models else None
        if ckpt is not None and ckpt.is_file():
            states.append(("trained", load_model(ckpt)[0]))
        builder = BatchBuilder(
            reader,
            scale,
            config["physics"]["contrast"],
            fresh.uses_coefficient,
            tcfg["sample_q"],
            patch=tcfg["patch"],
            elements=elements,
        )
        stream = TrainBatches(builder, scales, tcfg["batch_size"], int(config["seed"]))
        stream.stop = args.batches
        batches = list(iter(stream))
        for label, model in states:
            m = measure(model, batches)
            print(
                f"{method:8} {label:8} {m['l1']:9.4g} {m['h1']:9.4g} {m['energy']:9.4g}"
                f" {m['l1'] / m['h1']:9.3g} {m['l1'] / m['energy']:11.3g}"
            )
    reader.close()


if __name__ == "__main__":
    main()
