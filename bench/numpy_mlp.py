#!/usr/bin/env python3
"""The walkthrough's NumPy MLP, as the reference the Rust trainer is timed against.

784-100-200-10 with ReLU, Xavier-normal weights, zero biases, softmax cross-entropy,
plain minibatch SGD (learning rate 0.1, batch 32, reshuffled every epoch), float32
throughout, on the first 50,000 training images of an MNIST-format directory
(Fashion-MNIST by default), pixels scaled to [0, 1].

Two ways to run it:

  numpy_mlp.py [--epochs 25]          train and print per-epoch figures and the test
                                      accuracy (the accuracy reference);
  numpy_mlp.py --serve                read commands on stdin, one per line, and answer
                                      each with one JSON line on stdout, so that a
                                      benchmark can interleave NumPy and Rust runs:
                                        epoch          time one training epoch
                                        infer N        time N single-image predictions
                                        eval           time a batched pass over the test set
                                        config         the BLAS library and its threads
                                        quit

Every answer is a JSON object with a "kind" key. Times are wall-clock seconds from
time.perf_counter().
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
SIZES = (784, 100, 200, 10)
TRAIN_IMAGES = 50_000


def read_idx(path):
    """An IDX file (plain or .gz) as a NumPy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{data_dir}: no {stem}[.gz]")


def load(data_dir):
    """(x_train, y_train, x_test, y_test): float32 pixels in [0, 1], uint8 labels."""

    def pair(prefix):
        images = read_idx(find(data_dir, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find(data_dir, f"{prefix}-labels-idx1-ubyte"))
        x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
        return x, labels

    x_train, y_train = pair("train")
    x_test, y_test = pair("t10k")
    return x_train[:TRAIN_IMAGES], y_train[:TRAIN_IMAGES], x_test, y_test


class Mlp:
    """The walkthrough's network, all parameters float32."""

    def __init__(self, rng):
        self.weights = []
        self.biases = []
        for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
            std = np.sqrt(2.0 / (fan_in + fan_out))
            self.weights.append((rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32))
            self.biases.append(np.zeros(fan_out, dtype=np.float32))

    def forward(self, x):
        """The logits of a batch."""
        a = x
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w + b
            if k < last:
                a = np.maximum(a, 0)
        return a

    def train_step(self, x, y, lr):
        """One SGD step on a batch; returns the mean loss."""
        acts = [x]
        a = x
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w + b
            if k < last:
                a = np.maximum(a, 0)
            acts.append(a)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        sums = exp.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(np.mean(np.log(sums[:, 0]) - shifted[rows, y]))
        delta = exp / sums
        delta[rows, y] -= 1
        delta /= np.float32(len(y))
        for k in range(last, -1, -1):
            grad_w = acts[k].T @ delta
            grad_b = delta.sum(axis=0)
            if k > 0:
                # The first layer's input gradient is never needed.
                delta = (delta @ self.weights[k].T) * (acts[k] > 0)
            self.weights[k] -= lr * grad_w
            self.biases[k] -= lr * grad_b
        return loss

    def epoch(self, x, y, rng, lr=0.1, batch=32):
        order = rng.permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch):
            idx = order[start : start + batch]
            total += self.train_step(x[idx], y[idx], np.float32(lr)) * len(idx)
        return total / len(x)

    def accuracy(self, x, y):
        return float(np.mean(self.forward(x).argmax(axis=1) == y))


def blas_config():
    """Which BLAS NumPy runs and with how many threads (threadpoolctl, if present)."""
    info = {"numpy": np.__version__}
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        info[var] = os.environ.get(var)
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def serve(args):
    x_train, y_train, x_test, y_test = load(args.data)
    rng = np.random.default_rng(args.seed)
    model = Mlp(rng)
    # One untimed epoch first would change the model the timed epochs start from, but
    # not their cost; a short warm-up loads BLAS and faults in the pages.
    model.train_step(x_train[:32], y_train[:32], np.float32(0.1))
    model.forward(x_test[:1])

    def reply(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"kind": "ready", "train": len(x_train), "test": len(x_test)})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        if cmd == "epoch":
            t0 = time.perf_counter()
            loss = model.epoch(x_train, y_train, rng)
            seconds = time.perf_counter() - t0
            reply({"kind": "epoch", "seconds": seconds, "images": len(x_train), "loss": loss})
        elif cmd == "infer":
            n = int(words[1]) if len(words) > 1 else 2000
            n = min(n, len(x_test))
            forward = model.forward
            t0 = time.perf_counter()
            for i in range(n):
                forward(x_test[i : i + 1]).argmax()
            seconds = time.perf_counter() - t0
            reply({"kind": "infer", "seconds": seconds, "images": n, "per_image": seconds / n})
        elif cmd == "eval":
            t0 = time.perf_counter()
            acc = model.accuracy(x_test, y_test)
            seconds = time.perf_counter() - t0
            reply({"kind": "eval", "seconds": seconds, "images": len(x_test), "accuracy": acc})
        elif cmd == "config":
            reply({"kind": "config", **blas_config()})
        elif cmd == "quit":
            break
        else:
            reply({"kind": "error", "message": f"unknown command {cmd!r}"})


def train(args):
    x_train, y_train, x_test, y_test = load(args.data)
    rng = np.random.default_rng(args.seed)
    model = Mlp(rng)
    print(json.dumps({"kind": "config", **blas_config()}), flush=True)
    for e in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        loss = model.epoch(x_train, y_train, rng)
        seconds = time.perf_counter() - t0
        acc = model.accuracy(x_test, y_test)
        print(
            json.dumps({"kind": "epoch", "epoch": e, "seconds": seconds, "loss": loss, "test_accuracy": acc}),
            flush=True,
        )


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DEFAULT_DATA, help="MNIST-format directory (IDX files, .gz or not)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--serve", action="store_true", help="answer timing commands on stdin")
    args = p.parse_args()
    if args.serve:
        serve(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
