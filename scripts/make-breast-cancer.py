#!/usr/bin/env python3
"""Writes the full Breast Cancer Wisconsin (Diagnostic) table as one CSV file with a
header row of feature names and the labels as class names, from the copy that the
scikit-learn wheel ships (sklearn/datasets/data/breast_cancer.csv, whose header row
is "569,30,malignant,benign" and whose labels are 0 = malignant, 1 = benign).

    pip download scikit-learn==1.9.1 --no-deps -d wheel/
    python3 scripts/make-breast-cancer.py wheel/scikit_learn-1.9.1-*.whl full.csv
    cargo run --release -p mlp-train -- split --data full.csv --test-fraction 0.2 \\
        --split-seed 1 --out data/breast-cancer

Python 3 standard library only. The cells are copied as text, unchanged; the script
checks the row and column counts and the class totals (212 malignant, 357 benign)
that the data set's description gives.
"""

import csv
import io
import sys
import zipfile

# The ten measurements of a cell nucleus, and scikit-learn's names for their mean,
# standard error and worst value (load_breast_cancer's feature_names).
MEASUREMENTS = (
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
)
FEATURES = (
    [f"mean {m}" for m in MEASUREMENTS]
    + [f"{m} error" for m in MEASUREMENTS]
    + [f"worst {m}" for m in MEASUREMENTS]
)


def main():
    wheel, out = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(wheel) as z:
        text = z.read("sklearn/datasets/data/breast_cancer.csv").decode("ascii")
    rows = list(csv.reader(io.StringIO(text)))
    head, body = rows[0], rows[1:]
    if head != ["569", "30", "malignant", "benign"] or len(body) != 569:
        sys.exit(f"unexpected file: header {head}, {len(body)} rows")
    names = head[2:]
    counts = {n: 0 for n in names}
    with open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FEATURES + ["diagnosis"])
        for r in body:
            if len(r) != 31:
                sys.exit(f"a row of {len(r)} cells")
            label = names[int(r[30])]
            counts[label] += 1
            w.writerow(r[:30] + [label])
    if counts != {"malignant": 212, "benign": 357}:
        sys.exit(f"unexpected class totals {counts}")
    print(f"wrote {out}: 569 rows, 30 features, {counts}")


main()
