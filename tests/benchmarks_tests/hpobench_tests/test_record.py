"""The recorder: uniform draws that respect conditions, whole curves, and resuming."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchmarks.hpobench.record import (
    base_config,
    draw_params,
    header,
    load,
    read,
    record,
    write,
)
from studies import load_spec


def test_draws_respect_conditions_and_repeat() -> None:
    spec = load_spec("mnist-mlp")
    drawn = draw_params(spec, 40)
    for params in drawn:
        assert ("momentum" in params) == (params["optimizer"] in ("sgd", "rmsprop"))
        assert ("nesterov" in params) == (params["optimizer"] == "sgd")
        assert ("milestones" in params) == (params["schedule"] == "piecewise")
    assert draw_params(spec, 50)[:40] == drawn  # more draws extend, never change, a recording


def test_a_second_run_trains_only_the_missing_configurations(tmp_path: Path) -> None:
    spec = load_spec("digits-mlp")
    out = tmp_path / "digits.jsonl.gz"
    first = record(spec, out, configs=1, processes=0, epochs=2, nice=0, echo=lambda _: None)
    lines: list[str] = []
    second = record(spec, out, configs=2, processes=0, epochs=2, nice=0, echo=lines.append)

    assert [r["index"] for r in first] == [0]
    assert [r["index"] for r in second] == [0, 1]
    assert second[0] == first[0]  # kept, not trained again
    assert "1 recorded, 1 to train" in lines[0]
    assert [len(r["epochs"]) for r in second] == [2, 2]  # early stopping off: whole curves
    assert set(second[1]["epochs"][0]) == {
        "epoch",
        "train_loss",
        "dev_loss",
        "dev_accuracy",
        "lr",
        "seconds",
        "fraction",
    }


def test_a_file_cut_off_mid_line_keeps_its_whole_records(tmp_path: Path) -> None:
    spec = load_spec("digits-mlp")
    out = tmp_path / "cut.jsonl.gz"
    meta = header(spec, base_config(spec, epochs=2), sampler_seed=0)
    write(out, meta, [{"index": 0, "params": {}}])
    with out.open("ab") as file:  # a member whose writer was killed halfway
        file.write(gzip.compress(json.dumps({"index": 1}).encode())[:15])

    found, records, clean = read(out)
    lines: list[str] = []
    resumed = record(spec, out, configs=1, processes=0, epochs=2, nice=0, echo=lines.append)

    assert (found, records, clean) == (meta, [{"index": 0, "params": {}}], False)
    assert "keeping its 1 whole records" in lines[0]
    assert resumed == records
    assert read(out) == (meta, records, True)  # rewritten whole


def test_a_recording_of_another_budget_is_refused(tmp_path: Path) -> None:
    spec = load_spec("digits-mlp")
    out = tmp_path / "other.jsonl.gz"
    write(
        out,
        header(spec, spec.train.replace(epochs=3, patience=0, device="cpu"), sampler_seed=0),
        [],
    )

    with pytest.raises(ValueError, match="another recording"):
        record(spec, out, configs=1, processes=0, epochs=2, nice=0, echo=lambda _: None)
    assert load(out)[1] == []


def test_fractions_record_the_first_epochs_inner_points(tmp_path: Path) -> None:
    spec = load_spec("digits-mlp")
    out = tmp_path / "inner.jsonl.gz"

    (only,) = record(
        spec,
        out,
        configs=1,
        processes=0,
        epochs=1,
        fractions=(1 / 9, 1 / 3),
        nice=0,
        echo=lambda _: None,
    )

    shares = [e["fraction"] for e in only["epochs"]]
    assert shares[:2] == pytest.approx([1 / 9, 1 / 3], abs=0.01) and shares[2] == 1.0
    assert [e["epoch"] for e in only["epochs"]] == [0, 0, 0]
