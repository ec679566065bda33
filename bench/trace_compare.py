#!/usr/bin/env python3
"""Replays a Rust training trace (mlp-train/examples/trace.rs) in NumPy and compares.

The trace holds a Rust run's initial parameters, its per-epoch shuffled order, its
per-step losses and its parameters after some steps, in either arithmetic (meta.json
"kernels": core, the device's, or fast, fused multiply-adds). This script runs the
walkthrough's own training step (numpy_mlp.Mlp.train_step, unchanged) from the same
initial parameters over the same batches, three ways:

  np32   float32, as bench/numpy_mlp.py trains;
  np64   float64 (inputs pixel/255 in float64, the same float32 initial values and
         learning rate float32(0.1)): the ground truth the two float32 runs approximate;
  np32p  float32 with one initial weight moved by one ulp: how fast a rounding-sized
         difference grows in this training (the chaos control);

and prints the per-step losses' differences, the first step where two runs split,
the error of a single update made from the Rust parameters (at every snapshot step s
whose step s-1 is a snapshot too, and at s = 1), and the distance between the Rust
parameters and each run at every snapshot, per layer.

  cargo run --release -p mlp-train --example trace -- --data DIR --seed 1 \\
      --kernels core --steps 500 --at 1,2,10,11,100,101,499 --dump-data --out TRACE
  bench/trace_compare.py TRACE [--data DIR] [--no-perturbed] [--json OUT]

Trace files: init.f32, loss.f32 and params_<step, 6 digits>.f32 (f32 little-endian,
model-file order), order.u32 (epochs x n training indices), meta.json; with
trace --dump-data also {train,validation,test}_x.u8 and _y.u8 (the pixel bytes and
labels as the trainer holds them) and pixel_values.f32 (the input each of the 256
pixel bytes becomes), which are first checked against NumPy's loading. With a trace
covering whole epochs it also prints every run's validation (the last 10,000
training images) and test accuracies.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.dont_write_bytecode = True  # importing numpy_mlp leaves no __pycache__ in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_mlp import DEFAULT_DATA, TRAIN_IMAGES, Mlp, find, read_idx  # noqa: E402


def load_all(data_dir):
    """Pixels (uint8, [n, 784]) and labels of the training file and of t10k."""

    def pair(prefix):
        images = read_idx(find(data_dir, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find(data_dir, f"{prefix}-labels-idx1-ubyte"))
        return images.reshape(len(images), -1), labels

    return pair("train"), pair("t10k")


def check_data(trace, train_px, train_y, test_px, test_y):
    """Compares the sets the Rust trainer loaded (trace --dump-data) with NumPy's."""
    table = os.path.join(trace, "pixel_values.f32")
    if not os.path.exists(table):
        return
    rust_values = np.fromfile(table, dtype="<f4")
    numpy_values = np.arange(256).astype(np.float32) / np.float32(255)  # as numpy_mlp.load
    same = np.array_equal(rust_values.view(np.uint32), numpy_values.view(np.uint32))
    print(f"data pixel/255  : the 256 inputs bit-identical: {same}")
    numpy_sets = {
        "train": (train_px[:TRAIN_IMAGES], train_y[:TRAIN_IMAGES]),
        "validation": (train_px[TRAIN_IMAGES:], train_y[TRAIN_IMAGES:]),
        "test": (test_px, test_y),
    }
    for name, (px, y) in numpy_sets.items():
        rx = np.fromfile(os.path.join(trace, f"{name}_x.u8"), dtype=np.uint8).reshape(-1, px.shape[1])
        ry = np.fromfile(os.path.join(trace, f"{name}_y.u8"), dtype=np.uint8)
        same_x = rx.shape == px.shape and np.array_equal(rx, px)
        same_y = ry.shape == y.shape and np.array_equal(ry, y)
        print(
            f"data {name:<10} : Rust {rx.shape[0]} images, NumPy {px.shape[0]}; "
            f"pixels identical: {same_x}; labels identical: {same_y}"
        )
    print(f"(validation = training file images {TRAIN_IMAGES}..{len(train_px)})")


def params_to_layers(flat, sizes, dtype):
    """Model-file order (per layer W [in, out] row-major, then b) to lists of arrays."""
    weights, biases, off = [], [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weights.append(flat[off : off + fan_in * fan_out].reshape(fan_in, fan_out).astype(dtype))
        off += fan_in * fan_out
        biases.append(flat[off : off + fan_out].astype(dtype))
        off += fan_out
    assert off == len(flat), (off, len(flat))
    return weights, biases


def flatten(weights, biases):
    """Lists of arrays back to one float64 vector in model-file order."""
    return np.concatenate([np.ravel(t) for pair in zip(weights, biases) for t in pair]).astype(np.float64)


def model_from(weights, biases):
    """The walkthrough's Mlp holding these arrays (its own code runs the steps)."""
    m = Mlp.__new__(Mlp)
    m.weights = [w.copy() for w in weights]
    m.biases = [b.copy() for b in biases]
    return m


def batch_indices(order, n, batch, s):
    """The training indices of step s (from 1): batches of `batch` within each epoch."""
    epoch, index = divmod(s - 1, -(-n // batch))
    return order[epoch * n + index * batch : epoch * n + min((index + 1) * batch, n)]


def replay(model, x, y, order, n, batch, steps, snapshots, lr):
    """Runs `steps` steps of model.train_step over `order`; returns losses and snapshots."""
    losses = np.empty(steps)
    snaps = {}
    for s in range(1, steps + 1):
        idx = batch_indices(order, n, batch, s)
        losses[s - 1] = model.train_step(x[idx], y[idx], lr)
        if s in snapshots:
            snaps[s] = ([w.copy() for w in model.weights], [b.copy() for b in model.biases])
    return losses, snaps


def distance(a, b):
    """(max |a - b|, max |a - b| / max |b|), in float64."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(d.max()), float(d.max() / np.abs(np.asarray(b, dtype=np.float64)).max())


def accuracy(weights, biases, x, y):
    return float(np.mean(model_from(weights, biases).forward(x).argmax(axis=1) == y))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("trace", help="directory written by the trace example")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--no-perturbed", action="store_true", help="skip the one-ulp control run")
    p.add_argument("--json", help="also write every figure here")
    args = p.parse_args()

    meta = json.load(open(os.path.join(args.trace, "meta.json")))
    sizes, batch, steps, n = meta["sizes"], meta["batch"], meta["steps"], meta["train"]
    snapshots = set(meta["snapshots"])
    print(f"trace {args.trace}: seed {meta['seed']}, Rust kernels {meta['kernels']}, {steps} steps")
    (train_px, train_y), (test_px, test_y) = load_all(args.data)
    check_data(args.trace, train_px, train_y, test_px, test_y)

    assert n == TRAIN_IMAGES
    order = np.fromfile(os.path.join(args.trace, "order.u32"), dtype="<u4").astype(np.int64)
    for e in range(len(order) // n):
        assert np.array_equal(np.sort(order[e * n : (e + 1) * n]), np.arange(n)), f"epoch {e} order"
    rust_loss = np.fromfile(os.path.join(args.trace, "loss.f32"), dtype="<f4")
    init = np.fromfile(os.path.join(args.trace, "init.f32"), dtype="<f4")
    rust = {}
    for s in sorted(snapshots):
        flat = np.fromfile(os.path.join(args.trace, f"params_{s:06}.f32"), dtype="<f4")
        rust[s] = params_to_layers(flat, sizes, np.float32)

    y = train_y[:n].astype(np.int64)
    x32 = train_px[:n].astype(np.float32) / np.float32(255)
    x64 = train_px[:n].astype(np.float64) / 255.0
    lr = np.float32(meta["learning_rate"])
    w32, b32 = params_to_layers(init, sizes, np.float32)
    w64, b64 = params_to_layers(init, sizes, np.float64)
    runs = {}
    runs["np32"] = replay(model_from(w32, b32), x32, y, order, n, batch, steps, snapshots, lr)
    runs["np64"] = replay(model_from(w64, b64), x64, y, order, n, batch, steps, snapshots, lr)
    if not args.no_perturbed:
        wp = [w.copy() for w in w32]
        wp[1][17, 42] = np.nextafter(wp[1][17, 42], np.float32(np.inf))
        runs["np32p"] = replay(model_from(wp, b32), x32, y, order, n, batch, steps, snapshots, lr)

    out = {"meta": meta, "loss": {}, "params": []}
    print("\nper-step loss: max |difference| over steps 1..k (Rust f32 against ...)")
    for k in sorted({1, 10, 100, 500, 1000, steps} & set(range(1, steps + 1))):
        row = {name: float(np.max(np.abs(rust_loss[:k] - r[0][:k]))) for name, r in runs.items()}
        row["np32-np64"] = float(np.max(np.abs(runs["np32"][0][:k] - runs["np64"][0][:k])))
        out["loss"][k] = row
        print(f"  steps 1..{k:<6} " + "  ".join(f"{name} {v:.2e}" for name, v in row.items()))

    print("\nfirst step whose loss differs by more than 1e-4 (a first discrete split, e.g. a ReLU mask flip)")
    curves = {"rust": rust_loss[:steps].astype(np.float64), **{name: r[0] for name, r in runs.items()}}
    pairs = [("rust", "np32"), ("rust", "np64"), ("np32", "np64")]
    if "np32p" in runs:
        pairs.append(("np32p", "np32"))
    out["first_split"] = {}
    for a, b in pairs:
        big = np.nonzero(np.abs(curves[a] - curves[b]) > 1e-4)[0]
        first = int(big[0]) + 1 if len(big) else None
        out["first_split"][f"{a}-{b}"] = first
        print(f"  {a}-{b}: {first if first else f'none in {steps} steps'}")

    # One step from the Rust parameters: the error of a single update, with no history.
    local = sorted(s for s in snapshots if s == 1 or s - 1 in snapshots)
    if local:
        print("\none step from Rust's parameters after step s-1: ||NumPy update - Rust update|| / ||Rust update||")
        out["one_step"] = []
        for s in local:
            before = (w32, b32) if s == 1 else rust[s - 1]
            idx = batch_indices(order, n, batch, s)
            start = flatten(*before)
            du_rust = flatten(*rust[s]) - start
            row = {"step": s, "rows": len(idx)}
            for name, dtype, x in (("np32", np.float32, x32), ("np64", np.float64, x64)):
                m = model_from([t.astype(dtype) for t in before[0]], [t.astype(dtype) for t in before[1]])
                m.train_step(x[idx], y[idx], lr)
                du_np = flatten(m.weights, m.biases) - start
                row[name] = float(np.linalg.norm(du_np - du_rust) / np.linalg.norm(du_rust))
            out["one_step"].append(row)
            print(f"  s={s:<6} batch rows {len(idx):>2}  np32 {row['np32']:.2e}  np64 {row['np64']:.2e}")

    print("\nparameter distance after step s: ||a-b||/||b|| over all parameters; per layer max|a-b| (max|a-b|/max|b|)")
    for s in sorted(snapshots):
        params = {"rust": rust[s], **{name: r[1][s] for name, r in runs.items()}}
        for a, b in pairs:
            (wa, ba), (wb, bb) = params[a], params[b]
            flat_a, flat_b = flatten(wa, ba), flatten(wb, bb)
            total = float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_b))
            layers = [distance(wa[k], wb[k]) for k in range(len(wa))]
            biases = [distance(ba[k], bb[k]) for k in range(len(ba))]
            out["params"].append({"step": s, "a": a, "b": b, "rel_norm": total, "weights": layers, "biases": biases})
            per_layer = "  ".join(f"W{k + 1} {m:.1e} ({r:.1e})" for k, (m, r) in enumerate(layers))
            print(f"  s={s:<6} {a:>5}-{b:<5} {total:.2e}   {per_layer}")

    per_epoch = -(-n // batch)
    if steps % per_epoch == 0:
        x_val = train_px[n:].astype(np.float32) / np.float32(255)
        y_val = train_y[n:]
        x_test = test_px.astype(np.float32) / np.float32(255)
        final = {"rust": rust[steps], **{name: r[1][steps] for name, r in runs.items()}}
        print(f"\nafter {steps} steps ({steps // per_epoch} epochs): accuracies (forward in NumPy)")
        out["accuracy"] = {}
        for name, (w, b) in final.items():
            w = [t.astype(np.float32) for t in w]
            b = [t.astype(np.float32) for t in b]
            val, test = accuracy(w, b, x_val, y_val), accuracy(w, b, x_test, test_y)
            out["accuracy"][name] = {"validation": val, "test": test}
            print(
                f"  {name:<6} validation {100 * val:.2f}%  test {100 * test:.2f}%  "
                f"(test - validation {100 * (test - val):+.2f})"
            )

    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
