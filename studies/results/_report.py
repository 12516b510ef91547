"""`hpstudy report`: one self-contained HTML page about a study that opens offline.

Optuna's plotly figures (optimisation history, parameter importances, parallel coordinates,
intermediate values) with plotly.js inlined once, the learning curves of the best trials as
embedded PNGs, and the diagnosis of every finished trial. Nothing is fetched from a network.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from studies._errors import StudyError
from studies.analysis import (
    Diagnosis,
    plot_learning_curves,
    plot_lr_ranges,
    plot_size_curve,
)
from studies.results._files import check_output
from studies.results._pick import best_trial
from studies.results._read import FINISHED, OpenStudy, open_study
from studies.storage import (
    StudyAttrs,
    TrialAttrs,
    finished_trials,
    pareto_front,
    redact,
)

SUFFIXES = (".html", ".htm")
TOP_TRIALS = 4  # learning curves shown, best first
IMPORTANCE_SEED = 0  # fANOVA's forest is random; a fixed seed keeps the report repeatable

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .meta { color: #555; } .missing { color: #a33; }
img { max-width: 100%; }
"""


def _figures(study: optuna.Study) -> list[tuple[str, Callable[[], Any]]]:
    """The report's plotly figures, each made only when its section is written."""
    vis = optuna.visualization
    importance = optuna.importance.FanovaImportanceEvaluator(seed=IMPORTANCE_SEED)
    if len(study.directions) > 1:
        # Optuna's Pareto plot: the front highlighted, infeasible trials greyed, a hover per
        # trial; the other figures follow the first objective (trials report no steps).
        names = study.metric_names or ["value"]

        def first(trial: optuna.trial.FrozenTrial) -> float:
            return float((trial.values or [math.nan])[0])

        return [
            ("Pareto front", lambda: vis.plot_pareto_front(study, target_names=names)),
            (
                f"Optimisation history ({names[0]})",
                lambda: vis.plot_optimization_history(study, target=first, target_name=names[0]),
            ),
            (
                f"Parameter importances ({names[0]})",
                lambda: vis.plot_param_importances(
                    study, evaluator=importance, target=first, target_name=names[0]
                ),
            ),
            (
                f"Parallel coordinates ({names[0]})",
                lambda: vis.plot_parallel_coordinate(study, target=first, target_name=names[0]),
            ),
        ]
    return [
        ("Optimisation history", lambda: vis.plot_optimization_history(study)),
        (
            "Parameter importances",
            lambda: vis.plot_param_importances(study, evaluator=importance),
        ),
        ("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study)),
        ("Intermediate values (the metric per epoch)", lambda: vis.plot_intermediate_values(study)),
    ]


def render_report(opened: OpenStudy, *, top: int = TOP_TRIALS) -> str:
    """The report of an opened study as one HTML document.

    Raises:
        StudyError: for a study with no complete trial.
    """
    from plotly.offline import get_plotlyjs

    study = opened.study
    metric = (study.metric_names or ["value"])[0]
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in FINISHED]
    if len(study.directions) > 1:
        front = pareto_front(study)
        if not finished_trials(study):
            best_trial(study)  # raises the "no finished trial" error
        summary = f"Pareto front: trials {', '.join(str(t.number) for t in front) or 'none'}"
    else:
        best = best_trial(study)  # raises the "no finished trial" error
        summary = f"Best: trial {best.number}, {metric} {best.value:.4f}"
    names = study.metric_names or ["value"]
    goals = " and ".join(
        f"{name} is {direction.name.lower()}d"
        for name, direction in zip(names, study.directions, strict=False)
    )
    parts = [
        f"<h1>Study {_e(study.study_name)}</h1>",
        f"<p class='meta'>{_e(redact(opened.url))}; {goals}. {len(trials)} trials: "
        + ", ".join(
            f"{n} {state.name.lower()}"
            for state in optuna.trial.TrialState
            if (n := sum(t.state == state for t in trials))
        )
        + f". {summary}. Written "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.</p>",
    ]
    for title, make in _figures(study):
        parts.append(f"<h2>{_e(title)}</h2>")
        try:
            figure = make()
        except (ValueError, RuntimeError) as exc:  # e.g. importances need two complete trials
            parts.append(f"<p class='missing'>not available: {_e(str(exc))}</p>")
            continue
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False))
    parts.append(_curves_section(opened, finished_trials(study)[:top], metric))
    parts.append(_lr_range_section(study))
    parts.append(_size_curve_section(study))
    parts.append(_ablation_section(study))
    parts.append(_diagnosis_section(finished, metric))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>hpstudy report: {_e(study.study_name)}</title><style>{_STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def _image(png: bytes, *, alt: str, anchor: str = "") -> str:
    """A PNG inlined as an `<img>` tag, so the page is one self-contained file."""
    id_attr = f"id='{anchor}' " if anchor else ""
    return (
        f"<img {id_attr}alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
    )


def _curves_section(opened: OpenStudy, top: list[optuna.trial.FrozenTrial], metric: str) -> str:
    parts = [f"<h2>Learning curves of the {len(top)} best trials</h2>"]
    epochs = opened.epochs((t.number for t in top), partials=True)
    for trial in top:
        attrs = TrialAttrs.of(trial)
        labels = ", ".join(attrs.diagnosis)
        png = plot_learning_curves(
            epochs[trial.number],
            best_epoch=attrs.best_epoch,
            title=f"trial {trial.number}: {metric} {(trial.values or [math.nan])[0]:.4f}; {labels}",
            pretraining=attrs.pretraining,
            folds=(attrs.folds or {}).get("curves", ()),
        )
        parts.append(
            f"<h3 id='trial-{trial.number}'>Trial {trial.number}</h3>"
            f"<p>{_e(_params(trial))}</p>"
            + _image(png, alt=f"learning curves of trial {trial.number}")
        )
    return "\n".join(parts)


def _lr_range_section(study: optuna.Study) -> str:
    """The learning-rate range tests of an `auto` study, and the bounds it searched."""
    ranges = StudyAttrs.of(study, "lr_range").lr_range
    if not ranges:
        return ""
    png = plot_lr_ranges(ranges, title="learning-rate range test (loss against lr)")
    bounds = "; ".join(f"{name} [{r.low:.3g}, {r.high:.3g}]" for name, r in ranges.items())
    return (
        "<h2>Learning-rate range test</h2>"
        f"<p>The study searched the learning rate inside these bounds: {_e(bounds)}.</p>"
        + _image(png, alt="learning-rate range test", anchor="lr-range")
    )


def _size_curve_section(study: optuna.Study) -> str:
    """The last `hpstudy learning-curve` of the study: its picture and its reading."""
    curve = StudyAttrs.of(study, "learning_curve").learning_curve
    if curve is None:
        return ""
    png = plot_size_curve(curve.points, title=f"trial {curve.trial}: {curve.label}")
    return (
        f"<h2>Learning curves over the training-set size (trial {curve.trial})</h2>"
        f"<p>{_e(curve.sentence)}</p>"
        + _image(png, alt="learning curves over the training-set size", anchor="size-curve")
    )


def _ablation_section(study: optuna.Study) -> str:
    """An ablation's table: the mean per cell with its 95% interval, and the paired tests."""
    table = StudyAttrs.of(study, "ablation").ablation
    if table is None:
        return ""
    head = (*table.factors, "runs", "diverged", "mean", "95% interval", "p vs best (Holm)")
    rows = []
    for row in table.rows:
        interval = "-" if math.isnan(row.low) else f"[{row.low:.4f}, {row.high:.4f}]"
        p = row.p_vs_best
        shown = "best" if p is None else ("-" if math.isnan(p) else f"{p:.3g}")
        cells = (*row.cell, row.n, row.lost, f"{row.mean:.4f}", interval, shown)
        rows.append("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in cells) + "</tr>")
    return (
        "<h2>Ablation</h2>\n<table id='ablation'><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )


def _diagnosis_section(trials: list[optuna.trial.FrozenTrial], metric: str) -> str:
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        attrs = TrialAttrs.of(trial)
        summary = "-"
        if attrs.diagnosis:
            summary = Diagnosis.from_dict(
                {"labels": attrs.diagnosis, "numbers": attrs.diagnosis_numbers}
            ).summary()
        first = (trial.values or [None])[0]
        value = "-" if first is None or not math.isfinite(first) else f"{first:.4f}"
        cells = (
            trial.number,
            trial.state.name.lower(),
            value,
            _or_dash(attrs.epochs_run),
            _or_dash(attrs.best_epoch),
            _or_dash(attrs.stop_reason),
            summary,
            _params(trial),
        )
        rows.append("<tr>" + "".join(f"<td>{_e(str(c))}</td>" for c in cells) + "</tr>")
    head = ("#", "state", metric, "epochs", "best epoch", "stop", "diagnosis", "params")
    return (
        "<h2>Diagnosis of every finished trial</h2>\n<table id='diagnosis'><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr>\n"
        + "\n".join(rows)
        + "\n</table>"
    )


def _params(trial: optuna.trial.FrozenTrial) -> str:
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
    )


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def write_report(
    name: str, *, url: str | None = None, output: str | Path = "report.html", top: int = TOP_TRIALS
) -> Path:
    """Writes the report of study `name` to `output` (.html).

    Raises:
        StudyError: for an unknown study, a study with no complete trial, or an output path
            that cannot be written.
    """
    path = check_output(output, SUFFIXES)
    page = render_report(open_study(name, url), top=top)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise StudyError(
            f"cannot write '{path}': {exc.strerror or exc}; choose a path you can write to"
        ) from None
    return path
