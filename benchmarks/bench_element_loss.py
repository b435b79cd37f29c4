"""What the element-gradient term costs per training step (``fesr.element_loss``).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_element_loss.py
    .venv/bin/python benchmarks/bench_element_loss.py --methods nhcsr --elements 16 64 --steps 20

The quick preset's models and training batch (batch 8, sample_q 256, patch 32, the training
scales) on analytic fields at the preset's sizes (``tests/synthetic_data.py``; timing does not
depend on the values). Per step: the batch is built once with M elements per sample, then each
loss mode runs on it in turn (forward, backward, Adam step), so every mode is measured on the same
batches, interleaved, on a shared machine. Printed side by side: the median seconds of a step per
mode and its ratio to ``l1`` (the method's own loss, which never looks at the element keys), and
the batch-building time with and without elements. Each element adds 4 query points to the
sample_q of the method's own loss; the encoder runs once (``shared_encoding``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # synthetic_data: SPEC 1 files without FE solves
sys.path.insert(0, str(ROOT / "src"))

MODES = ("l1", "l1+h1", "l1+energy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["nhcsr", "liif"])
    ap.add_argument("--elements", nargs="+", type=int, default=[64], help="elements per sample")
    ap.add_argument("--steps", type=int, default=24, help="timed steps per (method, elements)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=16)
    args = ap.parse_args()

    import torch
    from synthetic_data import write_split

    from fesr.config import load_config
    from fesr.data import BatchBuilder, SplitReader
    from fesr.data.sampling import TrainBatches
    from fesr.element_loss import training_loss_with_elements
    from fesr.models import registry

    torch.set_num_threads(args.threads)
    config = copy.deepcopy(load_config("quick"))
    tcfg = config["training"]
    scales = [int(a) for a in tcfg["train_scales"]]
    print(
        f"quick preset: batch {tcfg['batch_size']}, sample_q {tcfg['sample_q']}, patch "
        f"{tcfg['patch']}, scales {scales}, {args.threads} thread(s), {args.steps} steps each"
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_split(
            tmp, "train", args.samples, [1, *scales], n=config["lr_n"], E=config["physics"]["E"]
        )
        reader = SplitReader(tmp, "train", [1, *scales])
        reader.preload(1 << 30)
        header = f"{'method':8} {'M':>4} {'+queries':>8} " + " ".join(
            f"{m + ' s':>13} {'x':>5}" for m in MODES
        )
        header += f" {'batch s':>9} {'batch+M s':>9}"
        print(header)
        for method in args.methods:
            for M in args.elements:
                torch.manual_seed(0)
                model = registry.build_model(method, config)
                opt = torch.optim.Adam(model.parameters(), lr=1e-4)

                def builder(elements, model=model):
                    return BatchBuilder(
                        reader,
                        1.0,
                        config["physics"]["contrast"],
                        model.uses_coefficient,
                        tcfg["sample_q"],
                        patch=tcfg.get("patch"),
                        elements=elements,
                    )

                plain = TrainBatches(builder(0), scales, tcfg["batch_size"], seed=0)
                stream = TrainBatches(builder(M), scales, tcfg["batch_size"], seed=0)
                times = {mode: [] for mode in MODES}
                build = {"plain": [], "elements": []}
                for it in range(args.steps + 2):  # the first two are warm-up
                    t0 = time.perf_counter()
                    plain.batch(it)
                    t1 = time.perf_counter()
                    batch = stream.batch(it)
                    t2 = time.perf_counter()
                    for mode in MODES:
                        t = time.perf_counter()
                        opt.zero_grad(set_to_none=True)
                        loss, _ = training_loss_with_elements(
                            model, batch, step=it, mode=mode, weight=0.1
                        )
                        loss.backward()
                        opt.step()
                        if it >= 2:
                            times[mode].append(time.perf_counter() - t)
                    if it >= 2:
                        build["plain"].append(t1 - t0)
                        build["elements"].append(t2 - t1)
                base = np.median(times["l1"])
                row = f"{method:8} {M:4d} {4 * M:8d} "
                row += " ".join(
                    f"{np.median(times[m]):13.4f} {np.median(times[m]) / base:5.2f}" for m in MODES
                )
                row += f" {np.median(build['plain']):9.4f} {np.median(build['elements']):9.4f}"
                print(row, flush=True)
        reader.close()


if __name__ == "__main__":
    main()
