"""Writes scikit-learn's diabetes data as `diabetes.csv` beside this file.

442 patients, 10 baseline features in their original units (age in years, sex as 1/2, BMI,
mean blood pressure and six blood serum measurements) and `progression`, a measure of disease
progression one year later (25 to 346). The raw units differ by orders of magnitude, which is
what `standardize = true` in `diabetes.toml` is for.

    python examples/regression-csv/make_data.py
"""

from __future__ import annotations

import csv
from pathlib import Path

from sklearn.datasets import load_diabetes

TARGET = "progression"
CSV_PATH = Path(__file__).resolve().parent / "diabetes.csv"


def write_csv(path: Path = CSV_PATH) -> int:
    """Writes the header row and one row per patient to `path`; returns the number of rows."""
    bunch = load_diabetes(scaled=False)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*bunch.feature_names, TARGET])
        for features, target in zip(bunch.data, bunch.target, strict=True):
            writer.writerow([*(repr(float(v)) for v in features), repr(float(target))])
    return len(bunch.target)


def main() -> None:
    rows = write_csv()
    print(f"wrote {rows} rows to {CSV_PATH}")


if __name__ == "__main__":
    main()
