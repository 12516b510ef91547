"""Few labels (issue 29): does a search whose space includes unsupervised pre-training export a
more accurate network than the same search without it?

Data: MNIST with `labels = N` (N = 1,000 and 100): N training rows keep their labels (each
digit its share, drawn with `split_seed` 0, the same rows in every study), the other training
rows of the 54,000-row training split lose them and join the unlabelled inputs; the 6,000-row
dev split and the 10,000-image test set as usual.

Two studies per label count and study seed, the same trial budget and seed:

- `pretrain`: the built-in spec `mnist-mlp-1000-labels` (784-300-100-10 MLP; lr, optimiser,
  momentum, dropout, weight decay; `pretrain_epochs` 0 or 1 as a choice, `pretrain_noise`
  searched when it is on), with `labels` set to N;
- `none`: the same spec without `[space.pretrain_epochs]` and `[space.pretrain_noise]`
  (pre-training off).

Each study's best trial (by dev loss) is exported and trained again from the exported file
with its test split (`studies.train(path, test=True)`; an exported pre-training config
pre-trains again, to the same weights); its test accuracy is the figure compared.

Results go to `--out` (JSON) after every study, and a run with the same `--out` and `--work`
skips the studies already there (a study stopped midway goes on from its stored trials), so
an interrupted benchmark resumes. Run from the repository root (one torch thread, one worker):

    nice -n 5 .venv/bin/python benchmarks/few_labels.py --trials 12 --seeds 0 1 2 \
        --labels 1000 100 --work /tmp/few-labels --out benchmarks/few_labels.json \
        --plot benchmarks/few_labels.png

The paired check (fixed fine-tuning configurations, each with and without pre-training on
the same seeds; the best epoch's network scored on the test set):

    nice -n 5 .venv/bin/python benchmarks/few_labels.py --paired benchmarks/few_labels_paired.json \
        --labels 1000 --seeds 0 1 2

The linear probe (the output layer alone trained on frozen hidden layers, pre-trained or not):

    nice -n 5 .venv/bin/python benchmarks/few_labels.py --probe benchmarks/few_labels_probe.json \
        --labels 1000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tomllib
from pathlib import Path
from typing import Any

from _tabular import load_average, search_and_test

from studies import builtin_specs

SPEC = "mnist-mlp-1000-labels"
ARMS = ("none", "pretrain")
PRETRAIN_FIELDS = ("pretrain_epochs", "pretrain_noise")


def spec(arm: str, *, labels: int, seed: int, trials: int, work: Path) -> dict[str, Any]:
    """The built-in spec as a dict, for one arm, label count and study seed."""
    data = tomllib.loads(builtin_specs()[SPEC].read_text())
    data = copy.deepcopy(data)
    name = f"fl-{labels}-{arm}-s{seed}"
    data["study"].update(
        name=name,
        storage=f"sqlite:///{work / (name + '.db')}",
        n_trials=trials,
        seed=seed,
        folder=str(work),
    )
    data["train"]["labels"] = labels
    data["train"]["data_dir"] = str(Path.cwd() / "data")
    if arm == "none":
        for field in PRETRAIN_FIELDS:
            del data["space"][field]
    return data


def one_study(arm: str, *, labels: int, seed: int, trials: int, work: Path) -> dict[str, Any]:
    """Runs one study, exports its best trial, retrains it with the test split."""
    import optuna

    from studies.storage import TrialAttrs

    s = spec(arm, labels=labels, seed=seed, trials=trials, work=work)
    figures, _ = search_and_test(s, folder=work, threads=1)
    lines = figures.pop("train_log")
    study = optuna.load_study(study_name=s["study"]["name"], storage=s["study"]["storage"])
    done = [t for t in study.trials if t.state.is_finished()]
    pretrained = [t for t in done if t.params.get("pretrain_epochs", 0)]
    pre_seconds = sum(r.seconds for t in done for r in TrialAttrs.of(t).pretraining)
    return {
        "labels": labels,
        "seed": seed,
        "arm": arm,
        "trials": len(done),
        "trials_pretrained": len(pretrained),
        "pretrain_seconds": pre_seconds,
        "best_pretrained": bool(figures["best_params"].get("pretrain_epochs", 0)),
        "pretrain_lines": [line for line in lines if "pre-training" in line],
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1000, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="study seeds")
    parser.add_argument("--trials", type=int, default=12, help="trials per study")
    parser.add_argument("--work", type=Path, default=Path("/tmp/few-labels"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/few_labels.json"))
    parser.add_argument("--plot", type=Path, default=None, help="a PNG of every trial's curve")
    parser.add_argument(
        "--paired",
        type=Path,
        default=None,
        help="instead of the studies: the paired check of fixed configurations, to this JSON",
    )
    parser.add_argument(
        "--probe",
        type=Path,
        default=None,
        help="instead of the studies: the linear probe of frozen hidden layers, to this JSON",
    )
    args = parser.parse_args()

    if args.probe is not None:
        for labels in args.labels:
            probe(labels, args.seeds, args.probe)
        return
    if args.paired is not None:
        done: list[dict[str, Any]] = []
        for labels in args.labels:
            done = paired(labels, args.seeds, args.paired)
        print_paired(done)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = json.loads(args.out.read_text()) if args.out.exists() else []
    print(f"work folder {args.work}; load average before: {load_average()}", flush=True)
    for labels in args.labels:
        for seed in args.seeds:
            for arm in ARMS:
                if any((r["labels"], r["seed"], r["arm"]) == (labels, seed, arm) for r in runs):
                    continue
                run = one_study(arm, labels=labels, seed=seed, trials=args.trials, work=args.work)
                run["load_average"] = load_average()
                runs.append(run)
                args.out.write_text(json.dumps(runs, indent=1) + "\n")
                shown = {k: v for k, v in run.items() if k not in ("pretrain_lines",)}
                print(json.dumps(shown), flush=True)
    print_table(runs)
    if args.plot is not None:
        plot(runs, args.work, args.plot)


# The paired check (`--paired`): fixed fine-tuning configurations, each trained with and
# without pre-training on the same seeds, so that the search's noise does not hide the effect.
PAIRED = {
    "adam lr 1e-3": {"optimizer": "adam", "lr": 1e-3},
    "sgd lr 0.05 momentum 0.9": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
}


def paired(labels: int, seeds: list[int], out: Path) -> list[dict[str, Any]]:
    """Each `PAIRED` configuration of the spec's `[train]` with `labels`, pre-training off
    (`pretrain_epochs` 0) and on (1, noise 0.2), per training seed: the best epoch's dev
    accuracy and its network's test accuracy. Saved to `out` after every run (resumes)."""
    import time

    import torch

    import trainer

    torch.set_num_threads(1)
    done: list[dict[str, Any]] = json.loads(out.read_text()) if out.exists() else []
    base = tomllib.loads(builtin_specs()[SPEC].read_text())["train"]
    data = None
    for name, changes in PAIRED.items():
        for seed in seeds:
            for pre in (0, 1):
                key = (labels, name, seed, pre)
                if any(
                    (r["labels"], r["config"], r["seed"], r["pretrain_epochs"]) == key for r in done
                ):
                    continue
                config = trainer.TrainConfig(
                    **{**base, "hidden": tuple(base["hidden"]), "labels": labels},
                    **changes,
                    seed=seed,
                    pretrain_epochs=pre,
                    pretrain_noise=0.2,
                    device="cpu",
                )
                if data is None:
                    data = trainer.load_data(config, with_test=True)
                tic = time.perf_counter()
                result = trainer.fit(config, data)
                assert result.best is not None and data.x_test is not None
                test = trainer.evaluate(
                    result.model, data.x_test, data.y_test, task="classification"
                )
                done.append(
                    {
                        "labels": labels,
                        "config": name,
                        "seed": seed,
                        "pretrain_epochs": pre,
                        "best_epoch": result.best_epoch,
                        "dev_accuracy": result.best.dev_accuracy,
                        "test_accuracy": test.accuracy,
                        "pretrain_seconds": sum(r.seconds for r in result.pretraining),
                        "seconds": time.perf_counter() - tic,
                    }
                )
                out.write_text(json.dumps(done, indent=1) + "\n")
                print(json.dumps(done[-1]), flush=True)
    return done


def probe(labels: int, seeds: list[int], out: Path) -> list[dict[str, Any]]:
    """The linear probe: the spec's network (seeded as `fit` seeds it), pre-trained (1 epoch a
    layer, noise 0.2) or not, its hidden layers then frozen and its output layer alone trained
    on the `labels` rows (Adam lr 1e-2, batch 32, 100 epochs); the test accuracy says how
    useful the hidden layers' features are by themselves. Saved to `out` (resumes)."""
    import torch

    import trainer

    torch.set_num_threads(1)
    done: list[dict[str, Any]] = json.loads(out.read_text()) if out.exists() else []
    base = tomllib.loads(builtin_specs()[SPEC].read_text())["train"]
    base = {**base, "hidden": tuple(base["hidden"]), "labels": labels, "device": "cpu"}
    data = trainer.load_data(trainer.TrainConfig(**base), with_test=True)
    assert data.x_test is not None and data.y_test is not None
    for pre in (0, 1):
        for seed in seeds:
            if any(
                (r["labels"], r["seed"], r["pretrain_epochs"]) == (labels, seed, pre) for r in done
            ):
                continue
            config = trainer.TrainConfig(**base, pretrain_epochs=pre, pretrain_noise=0.2, seed=seed)
            torch.manual_seed(seed)
            model = trainer.build_model(config, data.input_shape, data.num_classes)
            if pre:
                trainer.pretrain(model, data, config)
            for name, p in model.named_parameters():
                p.requires_grad = name.startswith("out")
            optimizer = torch.optim.Adam(
                [p for p in model.parameters() if p.requires_grad], lr=1e-2
            )
            order = torch.Generator().manual_seed(seed)
            model.train()
            for _ in range(100):
                perm = torch.randperm(len(data.y_train), generator=order)
                for begin in range(0, len(perm), 32):
                    rows = perm[begin : begin + 32]
                    loss = torch.nn.functional.cross_entropy(
                        model(data.x_train[rows]), data.y_train[rows]
                    )
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
            test = trainer.evaluate(model, data.x_test, data.y_test)
            done.append(
                {
                    "labels": labels,
                    "seed": seed,
                    "pretrain_epochs": pre,
                    "test_accuracy": test.accuracy,
                }
            )
            out.write_text(json.dumps(done, indent=1) + "\n")
            print(json.dumps(done[-1]), flush=True)
    return done


def print_paired(done: list[dict[str, Any]]) -> None:
    print(
        "| labels | fine-tuning | seed | test accuracy, pre-training off | on "
        "| gain (points) | pre-training (s) |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(done, key=lambda r: (-r["labels"], r["config"], r["seed"])):
        if r["pretrain_epochs"]:
            continue
        on = next(
            o
            for o in done
            if (o["labels"], o["config"], o["seed"]) == (r["labels"], r["config"], r["seed"])
            and o["pretrain_epochs"]
        )
        print(
            f"| {r['labels']} | {r['config']} | {r['seed']} | {100 * r['test_accuracy']:.2f}% "
            f"| {100 * on['test_accuracy']:.2f}% "
            f"| {100 * (on['test_accuracy'] - r['test_accuracy']):+.2f} "
            f"| {on['pretrain_seconds']:.0f} |"
        )


def plot(runs: list[dict[str, Any]], work: Path, path: Path) -> None:
    """Every trial's dev accuracy per epoch, one panel per label count: the trials that
    pre-trained in orange, the others in blue (solid: the study without pre-training in its
    space; dotted: the study with it)."""
    import optuna
    from matplotlib.figure import Figure

    from studies.storage import EpochStore, create_engine

    counts = sorted({r["labels"] for r in runs}, reverse=True)
    figure = Figure(figsize=(5.5 * len(counts), 4), dpi=100)
    panels = figure.subplots(1, len(counts), squeeze=False)[0]
    for axes, labels in zip(panels, counts, strict=True):
        for r in (r for r in runs if r["labels"] == labels):
            url = f"sqlite:///{work / (r['name'] + '.db')}"
            store = EpochStore(create_engine(url))
            study = optuna.load_study(study_name=r["name"], storage=url)
            for trial in study.trials:
                epochs = store.epochs(trial._trial_id)
                pre = bool(trial.params.get("pretrain_epochs", 0))
                axes.plot(
                    [e.epoch for e in epochs],
                    [e.dev_accuracy for e in epochs],
                    color="C1" if pre else "C0",
                    linestyle=":" if r["arm"] == "pretrain" else "-",
                    alpha=0.6,
                    linewidth=1,
                    marker="o",
                    markersize=2,
                )
        axes.plot([], [], color="C1", label="trial pre-trained")
        axes.plot([], [], color="C0", label="trial without pre-training")
        axes.set_title(f"{labels} labels: every trial of {len(runs) // len(counts)} studies")
        axes.set_xlabel("supervised epoch")
        axes.set_ylabel("dev accuracy")
        axes.set_ylim(0.5, 1.0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    print(f"wrote {path}")


def print_table(runs: list[dict[str, Any]]) -> None:
    """The markdown table of RESULTS.md and the medians per label count and arm."""
    print(
        "| labels | study seed | space | test accuracy | best dev loss | best pre-trains "
        "| trials pre-trained | pre-training (s) | study (s) |"
    )
    print("| ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for r in sorted(runs, key=lambda r: (-r["labels"], r["seed"], r["arm"])):
        print(
            f"| {r['labels']} | {r['seed']} | {r['arm']} | {100 * r['test_accuracy']:.2f}% "
            f"| {r['best_value']:.4f} | {'yes' if r['best_pretrained'] else 'no'} "
            f"| {r['trials_pretrained']} / {r['trials']} | {r['pretrain_seconds']:.0f} "
            f"| {r['wall_s']:.0f} |"
        )
    print()
    for labels in sorted({r["labels"] for r in runs}, reverse=True):
        medians = {}
        for arm in ARMS:
            group = [r["test_accuracy"] for r in runs if (r["labels"], r["arm"]) == (labels, arm)]
            if group:
                medians[arm] = statistics.median(group)
                each = ", ".join(f"{100 * a:.2f}%" for a in group)
                print(
                    f"labels {labels}, {arm}: median {100 * medians[arm]:.2f}% "
                    f"over {len(group)} seeds ({each})"
                )
        if len(medians) == 2:
            gain = 100 * (medians["pretrain"] - medians["none"])
            print(f"labels {labels}: pre-training in the space {gain:+.2f} points (medians)")


if __name__ == "__main__":
    main()
