#!/usr/bin/env python3
"""scikit-learn's MLPClassifier against the Rust trainer on the same CSV split.

Both read the same train.csv and test.csv (data/breast-cancer by default: the split
`mlp-train split` made once), and both train on every row of train.csv (the Rust
trainer with --validation 0) with the same settings as far as MLPClassifier allows:

  hidden sizes   --hidden (default 100, MLPClassifier's default)
  activation     ReLU hidden layers, softmax cross-entropy (log-loss) output
  optimizer      plain minibatch SGD: solver="sgd", momentum=0, constant learning rate
                 --lr (default 0.01), alpha=0 (no L2), batch --batch (default 32),
                 reshuffled every epoch
  epochs         exactly --epochs (default 100): max_iter=epochs, and
                 n_iter_no_change=epochs so that sklearn's tolerance never stops it early
  inputs         standardized as the trainer does: per feature (x - mean) * (1 / std),
                 the training file's mean and population standard deviation computed
                 in float64 and rounded once to float32, then the difference and the
                 product each rounded to float32; so both see bit-identical float32
                 inputs, and sklearn computes in float32 too
  threads        one: sklearn's BLAS limited to --blas-threads (default 1) with
                 threadpoolctl, the trainer run with --threads (default 1)

What cannot be matched: the initial weights (sklearn: Glorot uniform with its own
generator; the trainer: Xavier normal from ChaCha8), the shuffling order, and the
arithmetic (sklearn's BLAS against the trainer's fused multiply-adds). So the
accuracies are compared as medians over several seeds (--seeds, default 5), each
seed given to both (random_state and --seed).

Times: sklearn's is the wall time of fit(); the trainer's "training" is the sum of its
epochs' times (summary.json: each epoch's steps; no validation set, so nothing else),
and its "process" time is the whole command (start, reading and standardizing the
CSV files, training, writing and syncing to disk the checkpoint, log and chart after
every epoch, the model, summary and final test evaluation; --scratch says where). Each seed runs sklearn then the trainer, so
both see the same machine load.

  sklearn_mlp.py --trainer target/release/mlp-train [--data data/breast-cancer]
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits


def read_csv(path, classes=None):
    """(features float32 [n, d], class indices, class names): the label column last,
    class names sorted as the trainer sorts them (byte-wise, which for UTF-8 is
    code-point order)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    x = np.array([[float(v) for v in r[:-1]] for r in body], dtype=np.float32)
    labels = [r[-1].strip() for r in body]
    if classes is None:
        classes = sorted(set(labels))
    index = {name: i for i, name in enumerate(classes)}
    y = np.array([index[l] for l in labels], dtype=np.int64)
    return header, x, y, classes


def standardize(train, *others):
    """The trainer's normalization (see the module docstring), applied to every set.

    The sums run over the rows in file order, one float64 addition at a time, as the
    trainer's do (numpy's mean() may sum pairwise, which can differ in the last bit).
    """
    rows = train.astype(np.float64)
    total = np.zeros(rows.shape[1])
    for row in rows:
        total += row
    mean = total / len(rows)
    squares = np.zeros(rows.shape[1])
    for row in rows:
        d = row - mean
        squares += d * d
    std = np.sqrt(squares / len(rows))  # population (ddof=0)
    with np.errstate(divide="ignore", over="ignore"):
        scale = (1.0 / std).astype(np.float32)
    scale[~np.isfinite(scale)] = np.float32(1.0)
    offset = mean.astype(np.float32)
    return [((s - offset) * scale).astype(np.float32) for s in (train, *others)]


def run_sklearn(args, seed, x_train, y_train, x_test, y_test):
    model = MLPClassifier(
        hidden_layer_sizes=tuple(args.hidden),
        activation="relu",
        solver="sgd",
        learning_rate="constant",
        learning_rate_init=args.lr,
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        batch_size=args.batch,
        max_iter=args.epochs,
        n_iter_no_change=args.epochs,
        tol=0.0,
        shuffle=True,
        early_stopping=False,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
    accuracy = float((model.predict(x_test) == y_test).mean())
    if model.n_iter_ != args.epochs:
        sys.exit(f"sklearn stopped after {model.n_iter_} epochs, not {args.epochs}")
    return accuracy, seconds, model.coefs_[0].dtype


def run_rust(args, seed, train, test):
    with tempfile.TemporaryDirectory(dir=args.scratch) as out:
        command = [
            args.trainer, "train",
            "--data", train, "--test", test,
            "--hidden", ",".join(str(h) for h in args.hidden),
            "--epochs", str(args.epochs),
            "--batch-size", str(args.batch),
            "--learning-rate", str(args.lr),
            "--seed", str(seed),
            "--validation", "0",
            "--threads", str(args.threads),
            "--quiet", "--out", out,
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        process = time.perf_counter() - start
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
    training = sum(e["seconds"] for e in summary["epochs"])
    return summary["test"]["accuracy"], training, process


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trainer", required=True, help="the mlp-train binary")
    p.add_argument("--data", default="data/breast-cancer",
                   help="directory with train.csv and test.csv (label column last)")
    p.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",")], default=[100])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seeds", type=int, default=5, help="seeds 1..N, each given to both")
    p.add_argument("--threads", type=int, default=1, help="the trainer's --threads")
    p.add_argument("--blas-threads", type=int, default=1, help="sklearn's BLAS threads")
    p.add_argument("--scratch", default=None,
                   help="where the trainer's run directories go [default: the system's "
                   "temporary directory]; the trainer syncs its checkpoint, log and chart "
                   "to disk after every epoch, so the process time depends on this disk")
    args = p.parse_args()

    train = os.path.join(args.data, "train.csv")
    test = os.path.join(args.data, "test.csv")
    header, x_train, y_train, classes = read_csv(train)
    header_test, x_test, y_test, _ = read_csv(test, classes)
    if header != header_test:
        sys.exit(f"{test}: not the header of {train}")
    x_train, x_test = standardize(x_train, x_test)
    hidden = ",".join(str(h) for h in args.hidden)
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; "
          f"{train}: {len(y_train)} rows, {x_train.shape[1]} features, "
          f"classes {', '.join(classes)}; {test}: {len(y_test)} rows")
    print(f"hidden {hidden}, {args.epochs} epochs, batch {args.batch}, SGD lr {args.lr} "
          f"(no momentum, no L2), inputs standardized; sklearn BLAS threads "
          f"{args.blas_threads}, trainer threads {args.threads}; trainer outputs in "
          f"{args.scratch or tempfile.gettempdir()}")
    print()
    print("seed  sklearn acc  fit s   | trainer acc  training s  process s")
    rows = []
    for seed in range(1, args.seeds + 1):
        with threadpool_limits(limits=args.blas_threads):
            sk_acc, sk_s, dtype = run_sklearn(args, seed, x_train, y_train, x_test, y_test)
        rs_acc, rs_train, rs_process = run_rust(args, seed, train, test)
        rows.append((sk_acc, sk_s, rs_acc, rs_train, rs_process))
        print(f"{seed:>4}  {100 * sk_acc:>10.2f}%  {sk_s:>6.3f}  | {100 * rs_acc:>10.2f}%"
              f"  {rs_train:>10.3f}  {rs_process:>9.3f}")
    med = [statistics.median(c) for c in zip(*rows)]
    print(f"median {100 * med[0]:>9.2f}%  {med[1]:>6.3f}  | {100 * med[2]:>10.2f}%"
          f"  {med[3]:>10.3f}  {med[4]:>9.3f}")
    print()
    print(f"sklearn weights dtype: {dtype}")
    print(f"accuracy, trainer minus sklearn (medians): {100 * (med[2] - med[0]):+.2f} points")
    print(f"training time, sklearn fit / trainer epochs: {med[1] / med[3]:.1f}x; "
          f"sklearn fit / trainer whole process: {med[1] / med[4]:.1f}x")


if __name__ == "__main__":
    main()
