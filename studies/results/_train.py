"""`hpstudy train`: one config from a file, with a progress line per epoch."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studies._errors import ParameterError, StudyError
from studies.kept import restore_for_export
from studies.storage import Provenance, local_transfer
from trainer import (
    Evaluation,
    TrainConfig,
    cross_fit,
    ensemble_of,
    evaluate,
    fit,
    load_data,
    load_factory,
    parse_reference,
    read_config_file,
)

if TYPE_CHECKING:
    from trainer import CrossResult, Data, EpochResult, FitResult, PretrainEpoch


def format_epoch(result: EpochResult, epochs: int) -> str:
    """One progress line: losses, accuracy (or RMSE and R²), learning rate, seconds."""
    if math.isnan(result.dev_accuracy) and not math.isnan(result.dev_rmse):
        scores = (
            f"train loss {result.train_loss:.4f}  dev loss {result.dev_loss:.4f} "
            f"rmse {result.dev_rmse:.4g} R² {result.dev_r2:.4f}"
        )
    else:
        scores = (
            f"train loss {result.train_loss:.4f} acc {100 * result.train_accuracy:6.2f}%  "
            f"dev loss {result.dev_loss:.4f} acc {100 * result.dev_accuracy:6.2f}%"
        )
    # a point inside the first epoch (`fractions`): the share of it trained so far
    share = f"{result.fraction:.0%} of " if result.partial else ""
    return (
        f"epoch {result.epoch:>3} [{share}{result.epoch + 1}/{epochs}]  {scores}  "
        f"lr {result.lr:.3g}  {result.seconds:.1f}s"
    )


def format_pretraining(result: PretrainEpoch, epochs: int, *, networks: int = 1) -> str:
    """One progress line of pre-training: the layer, its epoch, the reconstruction loss; of a
    config of several `networks` (folds, repeats), which one, since each pre-trains in turn."""
    which = f"  network {result.member + 1}/{networks}" if networks > 1 else ""
    return (
        f"pre-training {result.layer.removesuffix('.weight')} epoch {result.epoch:>3} "
        f"[{result.epoch + 1}/{epochs}]  reconstruction loss {result.loss:.4f}  "
        f"({result.rows} inputs)  {result.seconds:.1f}s{which}"
    )


def format_scores(scores: Evaluation, split: str, task: str) -> str:
    """ "test loss 0.0498, test accuracy 98.56%", or a regression's loss, RMSE and R²."""
    if task == "regression":
        return (
            f"{split} loss {scores.loss:.4f} (MSE), {split} RMSE {scores.rmse:.4g}, "
            f"{split} R² {scores.r2:.4f}"
        )
    return f"{split} loss {scores.loss:.4f}, {split} accuracy {100 * scores.accuracy:.2f}%"


def check_user_code(
    config: TrainConfig,
    recorded: Mapping[str, Any] | None,
    search_path: Sequence[str],
    *,
    echo: Callable[[str], None] = print,
    when: str = "the trial ran",
) -> None:
    """Imports a user model factory again and says when its source changed since `when`.

    Args:
        recorded: the factory's identity as the trial stored it ({"ref", "source", "sha256"}).

    Raises:
        UserCodeError: when the factory cannot be imported here (its message names the file).
    """
    if parse_reference(config.model) is None:
        return
    factory = load_factory(config.model, search_path=search_path)
    before = (recorded or {}).get("sha256")
    if before and before != factory.sha256:
        echo(
            f"warning: {factory.source} has changed since {when} (sha256 {before[:12]} then, "
            f"{factory.sha256[:12]} now): the network may differ, and the numbers with it"
        )


@contextlib.contextmanager
def cpu_threads(device: Any, count: int | None, *, why: str = "") -> Iterator[str]:
    """Runs the block on `count` torch CPU threads when `device` is a CPU (None: as they are).

    Yields where it trains, for the first progress line: "cuda:0", or "cpu with 2 torch
    threads" followed by `why` when `count` was given.
    """
    if device.type != "cpu":
        yield str(device)
        return
    import torch

    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        now = torch.get_num_threads()
        plural = "s" if now != 1 else ""
        yield f"{device} with {now} torch thread{plural}{why if count is not None else ''}"
    finally:
        torch.set_num_threads(before)


def train_file(
    path: str,
    *,
    test: bool = False,
    overrides: Mapping[str, Any] | None = None,
    threads: int | None = None,
    weights: str | None = None,
    echo: Any = print,
    model: Any = None,
    data: Any = None,
) -> tuple[FitResult | CrossResult | None, dict[str, float]]:
    """Trains the config in `path`; returns the fit and, with `test`, its test scores.

    A config of several networks (`folds` or `repeats` > 1, as a fold trial's ensemble export
    writes it) trains all of them as its trial did and scores their `Ensemble`
    (`train_ensemble`); its `weights` are a kept ensemble.

    With `weights` (a state-dict file, e.g. from `hpstudy export --weights`), nothing is
    trained: the weights are loaded into the config's network (strictly: every entry must fit)
    and scored on the dev split, and with `test` on the test split; the fit is then None.

    An exported file trains as its trial did: on its thread count (on a CPU the same count
    repeats the trial's numbers exactly; `threads` changes it), with the feature statistics of
    its `[standardization]` table, and with the model code its provenance names, imported
    from beside the file (or where the trial had it) and compared with the trial's hash.

    A factory or data a study kept (``"study:model@<key>"``, from `studies.run(...,
    model=build, data=...)`) is `model` or `data` when given (checked against the key), else
    the one this process registered, else loaded from the study's database: $HPSTUDY_STORAGE
    or the storage the provenance names. Loading it from a database runs its code.
    """
    if threads is not None and threads < 1:
        raise ParameterError(f"`threads` must be at least 1, got {threads}")
    config = TrainConfig.load(path)
    if overrides:
        config = config.replace(**overrides)
    exported = read_config_file(path)
    about = Provenance.from_dict(exported.get("provenance", {}))
    search_path = _search_path(path, about)
    restore_for_export(config, about, model=model, data=data, path=path)
    check_user_code(config, about.model, search_path, echo=echo)
    stats = exported.get("standardization")
    data = load_data(config, with_test=test, standardization=stats, search_path=search_path)
    if weights is not None:
        return None, score_weights(config, data, weights, test=test, echo=echo)
    config, _ = local_transfer(config)  # init_from = "study@url": its kept weights, a file
    why = ""
    if threads is None:  # an exported trial's own count: `[provenance] torch_threads`
        stored = about.torch_threads
        if isinstance(stored, int) and stored >= 1:
            threads, why = stored, ", as its trial did (give threads to change it)"
    if config.folds * config.repeats > 1:
        with cpu_threads(data.x_train.device, threads, why=why) as where:
            return train_ensemble(
                config, data, test=test, where=where, echo=echo, search_path=search_path
            )
    with cpu_threads(data.x_train.device, threads, why=why) as where:
        echo(
            f"training {config.model} on {config.dataset} ({config.task}): "
            f"{data.identity['train']} train / {data.identity['dev']} dev examples, "
            f"up to {config.epochs} epochs on {where}"
        )
        result = fit(
            config,
            data,
            on_epoch=lambda e: echo(format_epoch(e, config.epochs)),
            search_path=search_path,
            on_pretrain=lambda e: echo(format_pretraining(e, config.pretrain_epochs)),
        )
    best = result.best
    if best is None:
        echo(f"run {result.status}: no epoch had a finite dev loss")
        return result, {}
    dev = Evaluation(best.dev_loss, best.dev_accuracy, best.dev_rmse, best.dev_r2)
    kept = (
        f"best epoch {best.epoch}: {format_scores(dev, 'dev', config.task)}"
        if len(data.y_dev)
        else f"no dev split (dev_fraction = 0): the last epoch, {best.epoch}, is kept"
    )
    echo(f"{result.status} after {len(result.epochs)} epochs in {result.seconds:.1f}s; {kept}")
    scores: dict[str, float] = {}
    if test:
        if data.x_test is None or data.y_test is None:
            raise ParameterError(
                f"data set '{config.dataset}' has no test split; hold one out with "
                f"test_fraction (e.g. test_fraction=0.2 in `overrides`, before any study uses "
                f"the data)"
            )
        scored = evaluate(
            result.model, data.x_test, data.y_test, task=config.task, target_std=data.target_std
        )
        scores = {f"test_{k}": v for k, v in scored.to_dict().items() if math.isfinite(v)}
        echo(f"{format_scores(scored, 'test', config.task)} ({len(data.y_test)} examples)")
    return result, scores


def train_ensemble(
    config: TrainConfig,
    data: Data,
    *,
    test: bool,
    where: str,
    echo: Callable[[str], None] = print,
    search_path: Sequence[str] = (),
) -> tuple[CrossResult, dict[str, float]]:
    """Trains a config of several networks (folds, repeats) as its trial did, in lock-step,
    and with `test` scores their `Ensemble` (the mean of their predictions) on the test split.

    Raises:
        StudyError: a network diverged (no ensemble to score), or `test` on data without a
            test split.
    """
    networks = config.folds * config.repeats
    echo(
        f"training {networks} networks of {config.model} on {config.dataset} ({config.task}): "
        f"{config.folds} fold(s) of {len(data.y_train)} training examples x {config.repeats} "
        f"seed(s), up to {config.epochs} epochs on {where}; the model is their ensemble"
    )
    result = cross_fit(
        config,
        data,
        on_epoch=lambda e: echo(format_epoch(e, config.epochs)),
        search_path=search_path,
        on_pretrain=lambda e: echo(
            format_pretraining(e, config.pretrain_epochs, networks=networks)
        ),
    )
    values = ", ".join(f"{v:.4f}" for v in result.values("dev_loss"))
    echo(
        f"{result.status} after {len(result.epochs)} epochs in {result.seconds:.1f}s; each "
        f"network's best-epoch dev loss: {values}"
    )
    if not test:
        return result, {}
    if data.x_test is None or data.y_test is None:
        raise StudyError(f"data set '{config.dataset}' has no test split")
    try:
        model = ensemble_of(result)
    except ValueError as exc:
        raise StudyError(str(exc)) from None
    scored = evaluate(model, data.x_test, data.y_test, task=config.task, target_std=data.target_std)
    echo(
        f"{format_scores(scored, 'test', config.task)} ({len(data.y_test)} examples; the "
        f"ensemble of {networks} networks)"
    )
    return result, {f"test_{k}": v for k, v in scored.to_dict().items() if math.isfinite(v)}


def score_weights(
    config: TrainConfig, data: Any, weights: str, *, test: bool, echo: Any = print
) -> dict[str, float]:
    """Scores stored weights on the dev (and test) split without training.

    Raises:
        WeightsError: for a file that is not a state dict or does not fit the network.
        StudyError: for `test` on data without a test split.
    """
    from trainer import evaluate_state

    if len(data.y_dev):
        dev = evaluate_state(config, data, weights, split="dev")
        echo(f"the weights in {weights}, not trained: {format_scores(dev, 'dev', config.task)}")
    else:
        echo(f"the weights in {weights}, not trained (no dev split to score: dev_fraction = 0)")
    if not test:
        return {}
    if data.x_test is None:
        raise StudyError(f"data set '{config.dataset}' has no test split")
    scored = evaluate_state(config, data, weights, split="test")
    echo(f"{format_scores(scored, 'test', config.task)} ({len(data.y_test)} examples)")
    return {f"test_{k}": v for k, v in scored.to_dict().items() if math.isfinite(v)}


def _search_path(path: str, provenance: Provenance) -> tuple[str, ...]:
    """Where relative model and data paths of an exported file resolve: beside the file,
    then where its trial's model file was."""
    folders = [str(Path(path).resolve().parent)]
    source = (provenance.model or {}).get("source")
    if source:
        folders.append(str(Path(source).parent))
    folder = provenance.folder
    if folder:
        folders.append(str(folder))
    return tuple(dict.fromkeys(folders))
