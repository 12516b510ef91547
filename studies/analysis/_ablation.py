"""An ablation's table: the mean metric per cell with a 95% interval, and paired tests.

An ablation runs every combination ("cell") of a few categorical factors (init x activation,
say) with the same seeds in every cell. Each cell's runs give a mean with a Student-t 95%
confidence interval; each cell is compared with the best cell by a paired t-test over the
seeds they share (the same seed starts the same weights and batch order wherever the factors
allow), and the p-values are Holm-corrected for the number of comparisons. "Significantly
worse than the best" is then a claim at the 5% level for the whole table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from studies.spec import CellRow

ALPHA = 0.05  # the family-wise error rate of the table's "significantly worse" claims


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean of `values`."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def ablation_table(
    runs: Mapping[tuple[Any, ...], Mapping[int, float]], *, maximize: bool, alpha: float = ALPHA
) -> list[CellRow]:
    """The table of an ablation, best cell first.

    Args:
        runs: cell -> {seed index: the run's metric}; non-finite values (a diverged run)
            are left out of the statistics and counted as lost.
        maximize: whether a higher metric is better (accuracy, R²).
        alpha: the family-wise error rate of the "worse than the best" claims.
    """
    from scipy import stats

    clean = {
        cell: {seed: v for seed, v in values.items() if math.isfinite(v)}
        for cell, values in runs.items()
    }
    stats_of = {cell: mean_interval(list(v.values())) for cell, v in clean.items() if v}
    sign = -1.0 if maximize else 1.0
    ranked = sorted(stats_of, key=lambda cell: sign * stats_of[cell][0])
    best = ranked[0]
    raw: dict[tuple[Any, ...], float] = {}
    for cell in ranked[1:]:
        shared = sorted(set(clean[cell]) & set(clean[best]))
        differences = [clean[cell][s] - clean[best][s] for s in shared]
        if len(shared) < 2:
            continue  # no pair to test: the cell is reported without a p-value
        if all(d == differences[0] for d in differences):
            # no spread: the same difference for every seed (a t-test is undefined)
            raw[cell] = 0.0 if differences[0] * sign > 0 else 1.0
            continue
        result = stats.ttest_rel([clean[cell][s] for s in shared], [clean[best][s] for s in shared])
        raw[cell] = float(result.pvalue)
    adjusted = dict(zip(raw, holm(list(raw.values())), strict=True))
    rows = []
    for cell in ranked:
        mean, low, high = stats_of[cell]
        p = adjusted.get(cell, math.nan if cell != best else None)
        worse = p is not None and p < alpha and sign * (mean - stats_of[best][0]) > 0
        lost = len(runs[cell]) - len(clean[cell])
        rows.append(CellRow(cell, len(clean[cell]), lost, mean, low, high, p, worse))
    for cell in runs:  # every run of these diverged: listed last, without statistics
        if cell not in stats_of:
            nan = math.nan
            rows.append(CellRow(cell, 0, len(runs[cell]), nan, nan, nan, nan, worse=False))
    return rows


def plot_ablation(rows: Sequence[CellRow], factors: Sequence[str], metric: str) -> bytes:
    """A PNG: each cell's mean with its 95% interval, best first; cells worse than the best
    (paired test, Holm-corrected) drawn hollow."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [row for row in rows if not math.isnan(row.mean)]
    figure = Figure(figsize=(8, 0.32 * len(shown) + 1.4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    figure.subplots_adjust(left=0.32, right=0.97, top=0.92, bottom=0.12)
    for y, row in enumerate(shown):
        low = row.mean - row.low if not math.isnan(row.low) else 0.0
        high = row.high - row.mean if not math.isnan(row.high) else 0.0
        axes.errorbar(
            row.mean,
            y,
            xerr=[[low], [high]],
            fmt="o",
            color="C3" if row.worse else "C0",
            markerfacecolor="white" if row.worse else "C0",
            capsize=3,
        )
    axes.set_yticks(range(len(shown)), [" / ".join(map(str, r.cell)) for r in shown])
    axes.invert_yaxis()
    axes.set_xlabel(f"mean {metric} (95% interval over seeds; hollow: worse than the best)")
    axes.set_title(" x ".join(factors), fontsize="medium")
    axes.grid(alpha=0.3, axis="x")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
