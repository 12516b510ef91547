"""A surrogate of recorded learning curves: the whole curve as a function of the configuration.

A search simulation asks it for the dev-loss curve of any configuration of the space (and
the seconds per epoch), trains nothing, and counts its cost in epochs:

    task = SurrogateTask.load("mnist-mlp")               # benchmarks/hpobench/mnist-mlp.jsonl.gz
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    trial = study.ask()
    params = task.suggest(trial)                         # the spec's space, conditions and all
    losses = task.curve(params, rng=np.random.default_rng(1))   # one "run": (epochs,) dev loss

The model (`CurveModel`) encodes a configuration as numbers (a float or int parameter scaled
to [0, 1] over its range, on a log scale where the space says so; a choice one-hot; a
conditional parameter that is absent leaves its columns at 0 and sets a flag of its own) and
predicts the log of every epoch's dev loss at once, by a random forest (or the k nearest
recorded configurations), and the seconds per epoch by a forest of their own. An epoch a run
did not reach because it diverged counts as the worse of its last finite dev loss and the loss
of guessing (ln of the number of classes): a simulated search sees a diverged configuration as
a hopeless one, never as a good one.

Noise: a draw with an `rng` is one run of the configuration: the model's mean curve plus a
noise curve (in log space) taken from one of the `noise_neighbours` nearest configurations
that have one, drawn at random. Where the same configurations were recorded again with other
seeds (`<spec>-reruns.jsonl.gz`, `record --seed-offset`), the noise curves are the measured
differences between the two runs of a configuration, divided by sqrt(2) (the spread of one run
about the pair's mean), cut at the 99th percentile of their size (a loss that spikes for
one epoch in one seed would otherwise also spike down), and a draw takes one of those measured
about a curve like its own mean: repeated draws differ as real reruns do, more where real
reruns differ more. Without reruns the noise curves are the model's held-out residuals
(truth minus the prediction made without that configuration), which hold the model's error
as well as a rerun's spread: on digits their sd, 0.67 in log final dev loss, is 3.5 times the
reruns' 0.19, so draws without reruns are far noisier than reruns are. Without an `rng` the
curve is the model's mean.

Points inside the first epoch (issue 28's data-fraction rungs): where
`<spec>-fractions.jsonl.gz` lies beside the recording (`record --epochs 1 --fractions
1/27,1/9,1/3`: the dev loss after a stratified 1/27, 1/9 and 1/3 of the first epoch, the
same configurations and seeds), `SurrogateTask.points` draws them with the whole epochs: a
forest of their own predicts their log dev loss (the epoch model is left as it was), and the
noise of a draw is one *joint* noise row, partial points and epochs of one configuration
together (from reruns of both recordings where `-fractions-reruns` and `-reruns` hold the
same configurations, else both models' held-out residuals of one configuration), so that a
run unlucky at a third of an epoch tends to stay unlucky, as real runs do. A point's cost:
the share of the epoch it trained, plus one dev evaluation (`eval_cost`, in epochs: the
median over the recorded configurations of a least-squares fit of the seconds between
points, `seconds = epoch_cost * share + eval_cost`).

`validate` measures the model on held-out configurations (k-fold): the Spearman rank
correlation between predicted and true final dev loss, and best (lowest over the epochs) dev
loss; where `<spec>-reruns.jsonl.gz` holds the same configurations run with other seeds
(`record --seed-offset`), `noise_check` compares their spread with the model's residuals.
Run it from the repository root:

    PYTHONPATH=. .venv/bin/python -m benchmarks.hpobench.surrogate digits-mlp mnist-mlp
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from scipy.stats import spearmanr
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold
from sklearn.neighbors import NearestNeighbors

from benchmarks.hpobench.record import default_path, draw, load
from search_space import Categorical, Fixed, Float, Int, SearchSpace, suggest

MODELS = ("forest", "knn")


# --- encoding ------------------------------------------------------------------------------------


def _key(value: Any) -> str:
    """A choice as a comparable key: lists and tuples alike, False apart from 0."""
    return json.dumps(list(value) if isinstance(value, tuple | list) else value)


class Encoder:
    """Configurations of a space as rows of numbers (see the module)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.columns: list[str] = []
        for name, param in space.items():
            if isinstance(param, Categorical):
                self.columns += [f"{name}={_key(choice)}" for choice in param.choices]
            elif isinstance(param, Float | Int):
                self.columns.append(name)
            if param.when is not None and not isinstance(param, Fixed):
                self.columns.append(f"{name} absent")

    def row(self, params: Mapping[str, Any]) -> np.ndarray:
        """One configuration's numbers.

        Raises:
            ValueError: a choice that is not among the parameter's choices.
        """
        out: list[float] = []
        for name, param in self.space.items():
            present = name in params
            if isinstance(param, Categorical):
                keys = [_key(choice) for choice in param.choices]
                hot = [0.0] * len(keys)
                if present:
                    value = _key(params[name])
                    if value not in keys:
                        raise ValueError(f"{name} = {value} is not one of its choices {keys}")
                    hot[keys.index(value)] = 1.0
                out += hot
            elif isinstance(param, Float | Int):
                out.append(_scaled(param, float(params[name])) if present else 0.0)
            if param.when is not None and not isinstance(param, Fixed):
                out.append(0.0 if present else 1.0)
        return np.array(out)

    def matrix(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([self.row(params) for params in configs]).reshape(len(configs), -1)


def _scaled(param: Float | Int, value: float) -> float:
    if param.log:
        return (math.log(value) - math.log(param.low)) / (
            math.log(param.high) - math.log(param.low)
        )
    return (value - param.low) / (param.high - param.low)


# --- the recorded curves as arrays -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Curves:
    """A recording as arrays: one row per configuration, one column per epoch."""

    params: list[dict[str, Any]]
    dev_loss: np.ndarray  # (configs, epochs); an epoch after divergence: see the module
    seconds: np.ndarray  # (configs, epochs); an epoch after divergence: the run's mean
    diverged: np.ndarray  # (configs,) bool
    space: SearchSpace
    spec: str

    @property
    def epochs(self) -> int:
        return int(self.dev_loss.shape[1])

    @classmethod
    def from_records(
        cls, meta: Mapping[str, Any], records: Sequence[Mapping[str, Any]], *, classes: int
    ) -> Curves:
        epochs = int(meta["train"]["epochs"])
        guess = math.log(classes)
        losses, seconds, diverged = [], [], []
        for record in records:
            loss = [_number(e["dev_loss"]) for e in record["epochs"]]
            finite = [v for v in loss if math.isfinite(v)]
            fill = max(guess, finite[-1] if finite else guess)
            loss = [v if math.isfinite(v) else fill for v in loss]
            loss += [fill] * (epochs - len(loss))
            took = [float(e["seconds"]) for e in record["epochs"]] or [0.0]
            took += [float(np.mean(took))] * (epochs - len(took))
            losses.append(loss)
            seconds.append(took)
            diverged.append(record["status"] == "diverged")
        return cls(
            params=[dict(r["params"]) for r in records],
            dev_loss=np.array(losses),
            seconds=np.array(seconds),
            diverged=np.array(diverged, dtype=bool),
            space=SearchSpace.from_dict(meta["space"]),
            spec=str(meta["spec"]),
        )

    @classmethod
    def load(cls, path: Path) -> Curves:
        meta, records = load(path)
        return cls.from_records(meta, _leading(records), classes=_classes(meta))

    def fingerprint(self) -> str:
        """A sha256 of what a model fitted to these curves reads: the space, every
        configuration, its dev loss and seconds per epoch. Two files of the same records agree
        (a gzip file's own bytes do not matter); a configuration added, removed or changed
        changes it."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.space.to_dict(), self.params], sort_keys=True).encode())
        for array in (self.dev_loss, self.seconds, self.diverged):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return digest.hexdigest()


def _leading(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Configurations 0, 1, ... up to the first index missing: a recording still being made
    (two processes finish out of order) may hold a gap, and the recordings of one spec (the
    reruns, the first-epoch points) are matched by position."""
    leading = []
    for position, record in enumerate(records):
        if record["index"] != position:
            break
        leading.append(record)
    return leading


def _number(value: Any) -> float:
    return float(value) if value is not None else math.nan


CLASSES = {"mnist": 10, "digits": 10}  # the built-in data sets' numbers of classes


def _classes(meta: Mapping[str, Any]) -> int:
    dataset = str(meta["train"]["dataset"])
    if dataset not in CLASSES:
        raise ValueError(
            f"recordings of {dataset!r} are not modelled yet: add its number of classes to "
            "CLASSES (a diverged run's dev loss is taken as that of guessing)"
        )
    return CLASSES[dataset]


# --- the model -------------------------------------------------------------------------------


class FlatForest:
    """A fitted random forest's trees as flat arrays, walked all at once with numpy.

    It predicts what `RandomForestRegressor.predict` does, about a hundred times faster for
    one row (scikit-learn walks its trees one after the other through joblib): a simulated
    search asks for one configuration's curve at a time, many thousand times.
    """

    def __init__(self, forest: RandomForestRegressor) -> None:
        trees = [estimator.tree_ for estimator in forest.estimators_]
        sizes = [tree.node_count for tree in trees]
        self.roots = np.cumsum([0, *sizes[:-1]])
        self.feature = np.concatenate([tree.feature for tree in trees])
        self.threshold = np.concatenate([tree.threshold for tree in trees])
        self.left, self.right = (
            np.concatenate(
                [
                    np.where(c >= 0, c + root, -1)
                    for c, root in zip(children, self.roots, strict=True)
                ]
            )
            for children in (
                [tree.children_left for tree in trees],
                [tree.children_right for tree in trees],
            )
        )
        self.value = np.concatenate([tree.value[:, :, 0] for tree in trees])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The forest's mean prediction, (rows, outputs)."""
        x = x.astype(np.float32)  # as scikit-learn compares them
        rows = np.arange(len(x))[:, None]
        node = np.repeat(self.roots[None, :], len(x), axis=0)
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                break
            feature = np.maximum(self.feature[node], 0)
            goes_left = x[rows, feature] <= self.threshold[node]
            step = np.where(goes_left, self.left[node], self.right[node])
            node = np.where(inner, step, node)
        return np.asarray(self.value[node].mean(axis=1))


class CurveModel:
    """Predicts log dev loss and log seconds per epoch from the encoded configuration.

    A random forest of `trees` trees is always fitted to the log dev-loss curves: it predicts
    them (model "forest"), and its feature importances weigh the columns of the distance
    between configurations, so that "near" means near in what matters (the learning rate
    more than the init). Model "knn" predicts the mean of the `neighbours` nearest recorded
    curves under that distance, weighted by 1 / distance. Seconds per epoch come from a
    forest of their own: wall time is noisy (other processes), and the loss forest's splits
    should not follow it.

    Args:
        space: the space the configurations come from.
        model: "forest" or "knn".
        noise_neighbours: among how many of the nearest configurations with a noise curve
            (see the module) a noisy draw chooses its own.
        seed: seeds the forests.

    Attributes:
        residuals: (configs, epochs): each recorded configuration's log dev-loss curve minus
            the model's prediction made without it (out of bag, or leaving it out of its
            neighbours); a noisy draw adds one of these.

    Raises:
        ValueError: an unknown model.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        model: str = "forest",
        trees: int = 200,
        neighbours: int = 5,
        noise_neighbours: int = 5,
        seed: int = 0,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        self.encoder = Encoder(space)
        self.model, self.trees, self.neighbours = model, trees, neighbours
        self.noise_neighbours, self.seed = noise_neighbours, seed

    def fit(
        self,
        configs: Sequence[Mapping[str, Any]],
        dev_loss: np.ndarray,
        seconds: np.ndarray,
        *,
        reruns: tuple[Sequence[Mapping[str, Any]], np.ndarray, np.ndarray] | None = None,
    ) -> CurveModel:
        """Fits the model to recorded curves ((configs, epochs) arrays, losses > 0).

        Args:
            configs: the configurations.
            dev_loss: their dev-loss curves.
            seconds: their seconds per epoch.
            reruns: configurations run twice, and their two runs' dev-loss curves: the noise
                that draws add (see the module); None: the held-out residuals.
        """
        x = self.encoder.matrix(configs)
        y = np.log(dev_loss)
        self._forest = self._new_forest(self.trees).fit(x, y)
        self._flat = FlatForest(self._forest)
        self._seconds = FlatForest(
            self._new_forest(max(20, self.trees // 4)).fit(x, np.log(np.maximum(seconds, 1e-6)))
        )
        self._scale = np.sqrt(self._forest.feature_importances_)
        self._x, self._y = x * self._scale, y
        self._knn = NearestNeighbors().fit(self._x)
        if self.model == "forest":
            self.residuals = y - self._forest.oob_prediction_.reshape(y.shape)
        else:
            self.residuals = y - self._knn_predict(self._x, leave_out_self=True)
        # Noise curves, each placed at the log curve it was measured about: a draw takes one
        # of a curve like its own mean (similar curves vary alike between seeds; with few
        # reruns, near in the configuration space can be far in behaviour).
        if reruns is None:
            self._noise, where = self.residuals, y
        else:
            _, first, second = reruns
            self._noise = (np.log(first) - np.log(second)) / math.sqrt(2)
            where = (np.log(first) + np.log(second)) / 2
        # A loss that spikes for an epoch in one seed (by up to 1000x on digits) would, taken
        # as a difference, also spike down: noise is cut at its 99th percentile in size.
        bound = float(np.quantile(np.abs(self._noise), 0.99))
        self._noise = np.clip(self._noise, -bound, bound)
        self._noise_near = NearestNeighbors().fit(where)
        return self

    def _new_forest(self, trees: int) -> RandomForestRegressor:
        # scikit-learn's defaults for regression (every feature at every split, leaves of
        # one): on digits they ranked held-out configurations best of the few settings tried
        # (Spearman of final dev loss 0.91, against 0.89 with half the features, leaves of 2)
        return RandomForestRegressor(
            n_estimators=trees,
            oob_score=True,
            random_state=self.seed,
            n_jobs=1,
        )

    def _knn_predict(self, scaled: np.ndarray, *, leave_out_self: bool = False) -> np.ndarray:
        count = min(self.neighbours + (1 if leave_out_self else 0), len(self._x))
        distances, indices = self._knn.kneighbors(scaled, n_neighbors=count)
        if leave_out_self:
            distances, indices = distances[:, 1:], indices[:, 1:]
        weights = 1.0 / (distances + 1e-3)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("ij,ijk->ik", weights, self._y[indices])

    def predict_log(self, x: np.ndarray) -> np.ndarray:
        """The model's mean log dev loss per epoch, (rows, epochs)."""
        if self.model == "forest":
            return self._flat.predict(x)
        return self._knn_predict(x * self._scale)

    def draw_log(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """The mean, plus a near configuration's noise curve when `rng` is given."""
        mean = self.predict_log(x)
        if rng is None:
            return mean
        count = min(self.noise_neighbours, len(self._noise))
        _, near = self._noise_near.kneighbors(mean, n_neighbors=count)
        chosen = near[np.arange(len(x)), rng.integers(0, count, size=len(x))]
        sign = rng.choice([-1.0, 1.0], size=(len(x), 1))  # a - b and b - a are alike
        return np.asarray(mean + sign * self._noise[chosen])

    def predict(
        self, configs: Sequence[Mapping[str, Any]], *, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dev loss and seconds per epoch, each (configs, epochs)."""
        x = self.encoder.matrix(configs)
        seconds = self._seconds.predict(x)
        return np.exp(self.draw_log(x, rng)), np.exp(seconds)


# --- validation ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Validation:
    """Held-out agreement of a model with the recorded curves (k-fold)."""

    spec: str
    model: str
    configs: int
    folds: int
    spearman_final: float  # final-epoch dev loss, predicted against true
    spearman_best: float  # lowest dev loss over the epochs, predicted against true
    spearman_best_top_half: float  # the same among the configurations better than the median
    top5_overlap: float  # share of the true top 5% that the prediction puts in its top 5%
    seconds_error: float  # median relative error of the predicted total seconds

    def line(self) -> str:
        return (
            f"{self.spec} ({self.configs} configurations, {self.model}, {self.folds}-fold): "
            f"Spearman final {self.spearman_final:.3f}, best {self.spearman_best:.3f}, "
            f"best among the better half {self.spearman_best_top_half:.3f}; "
            f"top-5% overlap {self.top5_overlap:.2f}; seconds error {self.seconds_error:.1%}"
        )


def validate(curves: Curves, *, model: str = "forest", folds: int = 5, seed: int = 0) -> Validation:
    """k-fold: fits on k-1 folds, predicts the held-out fold's mean curves, compares."""
    predicted = np.zeros_like(curves.dev_loss)
    seconds = np.zeros_like(curves.seconds)
    splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(curves.params)
    for train, test in splits:
        fitted = CurveModel(curves.space, model=model, seed=seed).fit(
            [curves.params[i] for i in train], curves.dev_loss[train], curves.seconds[train]
        )
        predicted[test], seconds[test] = fitted.predict([curves.params[i] for i in test])
    true_best, predicted_best = curves.dev_loss.min(axis=1), predicted.min(axis=1)
    better = true_best <= np.median(true_best)
    top = max(1, round(0.05 * len(true_best)))
    true_top = set(np.argsort(true_best)[:top])
    predicted_top = set(np.argsort(predicted_best)[:top])
    total, predicted_total = curves.seconds.sum(axis=1), seconds.sum(axis=1)
    return Validation(
        spec=curves.spec,
        model=model,
        configs=len(curves.params),
        folds=folds,
        spearman_final=_spearman(curves.dev_loss[:, -1], predicted[:, -1]),
        spearman_best=_spearman(true_best, predicted_best),
        spearman_best_top_half=_spearman(true_best[better], predicted_best[better]),
        top5_overlap=len(true_top & predicted_top) / top,
        seconds_error=float(np.median(np.abs(predicted_total - total) / total)),
    )


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """`choose_model`'s choice for one recording, with the scores and the curves it read."""

    model: str  # one of MODELS
    spearman_final: dict[str, float]  # each model's held-out Spearman of final dev loss
    folds: int  # of `validate`'s k-fold
    configs: int  # configurations the choice was made on
    fingerprint: str  # `Curves.fingerprint()` of those curves

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelChoice:
        return cls(**values)


def choose_model(curves: Curves, *, folds: int = 5) -> ModelChoice:
    """The model whose held-out predictions rank the configurations' final dev loss best
    (`validate`'s Spearman, seed 0; a tie keeps the forest). It is chosen on the recording
    alone, before any search runs on it: on digits-mlp the forest (0.911 against 0.902), on
    mnist-mlp the nearest neighbours (0.836 against 0.670 on its first 193 configurations).
    It costs a k-fold fit of every model (some 10 s on mnist-mlp): `kept_model_choice` keeps
    it beside the recording."""
    scores = {name: validate(curves, model=name, folds=folds).spearman_final for name in MODELS}
    return ModelChoice(
        model=max(MODELS, key=lambda name: (scores[name], name == "forest")),
        spearman_final=scores,
        folds=folds,
        configs=len(curves.params),
        fingerprint=curves.fingerprint(),
    )


def model_choice_path(path: Path) -> Path:
    """Where a recording's model choice is kept: `<name>-model.json` beside it."""
    return path.with_name(path.name.replace(".jsonl.gz", "-model.json"))


def kept_model_choice(curves: Curves, path: Path, *, folds: int = 5) -> ModelChoice:
    """`choose_model`'s choice for the recording at `path` (whose curves are `curves`), read
    from `model_choice_path(path)` where that was made on the same curves (the same
    `Curves.fingerprint()`, folds and MODELS), else made again and written there.

    Several simulations may load one recording at once: the file is replaced whole (a
    temporary file, then `os.replace`), so a reader sees an old choice or a new one, never half
    of one; two processes that both choose again write the same choice. Where the folder is
    not writable the choice is made and used, not kept.
    """
    where = model_choice_path(path)
    fingerprint = curves.fingerprint()
    try:
        kept: ModelChoice | None = ModelChoice.from_dict(json.loads(where.read_text()))
    except (OSError, ValueError, TypeError):  # none yet, or not a choice (JSON errors too)
        kept = None
    if (
        kept is not None
        and kept.fingerprint == fingerprint
        and kept.folds == folds
        and set(kept.spearman_final) == set(MODELS)
    ):
        return kept
    choice = choose_model(curves, folds=folds)
    temporary = where.with_name(f".{where.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(choice.to_dict(), indent=2) + "\n")
        os.replace(temporary, where)
    except OSError:
        temporary.unlink(missing_ok=True)
    return choice


@dataclasses.dataclass(frozen=True)
class NoiseCheck:
    """How much reruns of one configuration differ, against what a noisy draw adds."""

    spec: str
    configs: int  # configurations recorded twice (two seeds)
    rerun_sd: float  # sd of one run's log final dev loss about its configuration's mean
    residual_sd: float  # sd of the model's held-out residual of the same (all configurations)

    def line(self) -> str:
        return (
            f"{self.spec}: log final dev loss varies by sd {self.rerun_sd:.3f} between reruns "
            f"({self.configs} configurations run twice); the model's held-out residual: sd "
            f"{self.residual_sd:.3f}"
        )


def rerun_path(path: Path) -> Path:
    """Where the reruns of a recording lie: `<name>-reruns.jsonl.gz` beside it."""
    return path.with_name(path.name.replace(".jsonl.gz", "-reruns.jsonl.gz"))


def _pairs(curves: Curves, reruns: Curves) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """The configurations run twice (neither run diverged) and their two dev-loss curves.

    Raises:
        ValueError: the reruns are of other configurations.
    """
    count = min(len(curves.params), len(reruns.params))
    if curves.params[:count] != reruns.params[:count]:
        raise ValueError(
            "the reruns are not of the same configurations: record them with the "
            "same spec and sampler seed, another --seed-offset"
        )
    keep = np.flatnonzero(~(curves.diverged[:count] | reruns.diverged[:count]))
    return [curves.params[i] for i in keep], curves.dev_loss[keep], reruns.dev_loss[keep]


def noise_check(curves: Curves, reruns: Curves, *, model: str = "forest") -> NoiseCheck:
    """Compares reruns (the same configurations, other seeds: `record --seed-offset`) with
    the held-out residuals of the model fitted to `curves` (the noise without reruns).

    Raises:
        ValueError: the reruns are of other configurations.
    """
    again, first, second = _pairs(curves, reruns)
    difference = np.log(first[:, -1]) - np.log(second[:, -1])
    fitted = CurveModel(curves.space, model=model).fit(
        curves.params, curves.dev_loss, curves.seconds
    )
    return NoiseCheck(
        spec=curves.spec,
        configs=len(again),
        rerun_sd=float(np.std(difference) / math.sqrt(2)),
        residual_sd=float(np.std(fitted.residuals[~curves.diverged, -1])),
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b).statistic)


# --- points inside the first epoch ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Partials:
    """A recording of the first epoch's inner points (`record --fractions`), as arrays."""

    params: list[dict[str, Any]]
    fractions: np.ndarray  # (points,): the shares trained, the mean over configurations
    dev_loss: np.ndarray  # (configs, points); not finite: as `Curves` fills a diverged run
    eval_cost: float  # one dev evaluation, in epochs of training (see the module)

    @classmethod
    def load(cls, path: Path) -> Partials:
        meta, records = load(path)
        records = _leading(records)
        guess = math.log(_classes(meta))
        points = len(meta["train"]["fractions"])
        losses, shares, costs = [], [], []
        for record in records:
            inner = [e for e in record["epochs"] if float(e.get("fraction", 1.0)) < 1.0]
            loss = [_number(e["dev_loss"]) for e in inner][:points]
            finite = [v for v in loss if math.isfinite(v)]
            fill = max(guess, finite[-1] if finite else guess)
            loss = [v if math.isfinite(v) else fill for v in loss] + [fill] * (points - len(loss))
            losses.append(loss)
            if len(inner) == points and len(record["epochs"]) > points:
                shares.append([float(e["fraction"]) for e in inner])
                whole = record["epochs"][points]
                done = np.array([0.0, *shares[-1], 1.0])
                took = np.array([0.0, *(float(e["seconds"]) for e in inner), whole["seconds"]])
                design = np.c_[np.diff(done), np.ones(len(done) - 1)]
                epoch, evaluation = np.linalg.lstsq(design, np.diff(took), rcond=None)[0]
                if epoch > 0:
                    costs.append(max(0.0, evaluation / epoch))
        return cls(
            params=[dict(r["params"]) for r in records],
            fractions=np.mean(shares, axis=0),
            dev_loss=np.array(losses),
            eval_cost=float(np.median(costs)),
        )


def fractions_path(path: Path, *, reruns: bool = False) -> Path:
    """Where a recording's first-epoch points lie: `<name>-fractions[-reruns].jsonl.gz`."""
    tail = "-fractions-reruns.jsonl.gz" if reruns else "-fractions.jsonl.gz"
    return path.with_name(path.name.replace(".jsonl.gz", tail))


class PointModel:
    """The epoch model (`CurveModel`) plus a forest for the first epoch's inner points, and
    joint noise rows over both (see the module)."""

    def __init__(
        self,
        epochs: CurveModel,
        curves: Curves,
        partials: Partials,
        *,
        reruns: tuple[Curves, Partials] | None,
        seed: int = 0,
    ) -> None:
        count = min(len(curves.params), len(partials.params))
        if curves.params[:count] != partials.params[:count]:
            raise ValueError(
                "the first-epoch points are not of the recording's configurations: record "
                "them with the same spec and sampler seed (record --epochs 1 --fractions ...)"
            )
        self.epochs, self.points = epochs, partials.fractions.shape[0]
        x = epochs.encoder.matrix(partials.params[:count])
        y = np.log(partials.dev_loss[:count])
        forest = RandomForestRegressor(
            n_estimators=epochs.trees, oob_score=True, random_state=seed, n_jobs=1
        ).fit(x, y)
        self._flat = FlatForest(forest)
        residuals = y - forest.oob_prediction_.reshape(y.shape)
        if reruns is None:
            noise = np.c_[residuals, epochs.residuals[:count]]
            where = np.c_[y, epochs._y[:count]]
        else:
            again, again_partials = reruns
            both = min(len(again.params), len(again_partials.params), count)
            keep = np.flatnonzero(~(curves.diverged[:both] | again.diverged[:both]))
            first = np.log(np.c_[partials.dev_loss[keep], curves.dev_loss[keep]])
            second = np.log(np.c_[again_partials.dev_loss[keep], again.dev_loss[keep]])
            noise, where = (first - second) / math.sqrt(2), (first + second) / 2
        bound = np.quantile(np.abs(noise), 0.99, axis=0)  # per column: see CurveModel.fit
        self._noise = np.clip(noise, -bound, bound)
        self._near = NearestNeighbors().fit(where)
        self.noise_neighbours = epochs.noise_neighbours

    def draw_log(self, x: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Log dev loss at the inner points then every epoch, (rows, points + epochs)."""
        mean = np.c_[self._flat.predict(x), self.epochs.predict_log(x)]
        if rng is None:
            return mean
        count = min(self.noise_neighbours, len(self._noise))
        _, near = self._near.kneighbors(mean, n_neighbors=count)
        chosen = near[np.arange(len(x)), rng.integers(0, count, size=len(x))]
        sign = rng.choice([-1.0, 1.0], size=(len(x), 1))
        return np.asarray(mean + sign * self._noise[chosen])


# --- what a search simulation calls ----------------------------------------------------------


class SurrogateTask:
    """A recorded spec as a benchmark: its space to sample from, a curve per configuration.

    Args:
        curves: the recorded curves the model is fitted to.
        reruns: the first configurations of `curves` recorded again with other seeds: the
            noise of a draw (see the module); None: the model's held-out residuals.
        model: see `CurveModel`.
        seed: seeds the model.
    """

    def __init__(
        self,
        curves: Curves,
        *,
        reruns: Curves | None = None,
        partials: Partials | None = None,
        partial_reruns: Partials | None = None,
        model: str = "forest",
        seed: int = 0,
    ) -> None:
        self.curves = curves
        self.model_name = model
        self.space = curves.space
        self.epochs = curves.epochs
        self.model = CurveModel(self.space, model=model, seed=seed).fit(
            curves.params,
            curves.dev_loss,
            curves.seconds,
            reruns=None if reruns is None else _pairs(curves, reruns),
        )
        # the first epoch's inner points, where recorded (None: whole epochs only)
        self.fractions: tuple[float, ...] = ()
        self.eval_cost = 0.0
        self._points: PointModel | None = None
        self._no_points = (
            "no first-epoch points were recorded for this task: record them with "
            "record --epochs 1 --fractions 1/27,1/9,1/3 --out <spec>-fractions.jsonl.gz"
        )
        if partials is not None and reruns is not None and partial_reruns is None:
            # The whole curves' noise comes from the reruns, the points' could only come from
            # the model's held-out residuals, mostly model error (on mnist-mlp, sd 0.69
            # against the reruns' 0.11): draws with points would end far below any recorded
            # run (a simulated best dev loss of 0.0136 where the recorded best is 0.0503).
            partials = None
            self._no_points = (
                "the first-epoch points of this task have no reruns, so their noise is "
                "unknown: record them with record --epochs 1 --fractions 1/27,1/9,1/3 "
                "--seed-offset 1000 --configs 100 --out <spec>-fractions-reruns.jsonl.gz"
            )
        if partials is not None:
            joint = None
            if reruns is not None and partial_reruns is not None:
                joint = (reruns, partial_reruns)
            self._points = PointModel(self.model, curves, partials, reruns=joint, seed=seed)
            self.fractions = tuple(float(f) for f in partials.fractions)
            self.eval_cost = partials.eval_cost

    @classmethod
    def load(cls, spec: str | Path, *, model: str = "auto", seed: int = 0) -> SurrogateTask:
        """The surrogate of a recording: a built-in spec's name, or a recording's path; its
        reruns, where `<name>-reruns.jsonl.gz` lies beside it, give the noise. Model "auto"
        is `choose_model`'s: the one that ranks held-out configurations best, kept in
        `<name>-model.json` beside the recording while the recording stays the same
        (`kept_model_choice`)."""
        path = Path(spec) if str(spec).endswith(".gz") else default_path(str(spec))
        again = rerun_path(path)
        reruns = Curves.load(again) if again.exists() else None
        inner, inner_again = fractions_path(path), fractions_path(path, reruns=True)
        curves = Curves.load(path)
        if model == "auto":
            model = kept_model_choice(curves, path).model
        return cls(
            curves,
            reruns=reruns,
            partials=Partials.load(inner) if inner.exists() else None,
            partial_reruns=Partials.load(inner_again) if inner_again.exists() else None,
            model=model,
            seed=seed,
        )

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """A configuration drawn from the space by `trial` (conditional parameters as the
        spec has them)."""
        return suggest(trial, self.space)

    def curve(
        self, params: Mapping[str, Any], *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The configuration's dev loss per epoch, (epochs,): the model's mean, or with
        `rng` one noisy run (see the module)."""
        return np.exp(self.model.draw_log(self.model.encoder.matrix([params]), rng)[0])

    def points(
        self, params: Mapping[str, Any], *, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        """The dev loss at the first epoch's inner points (`fractions`), then at every epoch,
        (points + epochs,): one noisy run with `rng` (see the module).

        Raises:
            ValueError: the recording has no first-epoch points.
        """
        if self._points is None:
            raise ValueError(self._no_points)
        return np.exp(self._points.draw_log(self.model.encoder.matrix([params]), rng)[0])

    def curves_of(
        self, configs: Sequence[Mapping[str, Any]], *, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dev loss and seconds per epoch of many configurations at once (faster)."""
        return self.model.predict(configs, rng=rng)

    def seconds(self, params: Mapping[str, Any]) -> np.ndarray:
        """The configuration's predicted seconds per epoch, (epochs,)."""
        return self.model.predict([params])[1][0]

    def target(
        self, quantile: float = 0.95, *, noisy: bool = True, draws: int = 4000, seed: int = 1
    ) -> float:
        """The best dev loss (lowest over the epochs) that a `quantile` share of uniform draws
        from the space do not reach: 0.95 gives the top-5% target of issue 28.

        It is measured in the surrogate's own world (`draws` configurations drawn with a
        `RandomSampler` of `seed`; their noisy runs, as a search sees them, or with
        `noisy=False` their mean curves), not on the recorded curves: the model's mean is
        smoother than the recorded runs, so the recorded top 5% may lie beyond what its
        means reach (on digits the recorded 0.0496 is below 99% of the mean curves' best).
        """
        drawn = draw(self.space, draws, seed=seed)
        rng = np.random.default_rng(seed) if noisy else None
        return float(np.quantile(self.curves_of(drawn, rng=rng)[0].min(axis=1), 1.0 - quantile))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validates the surrogate on held-out curves")
    parser.add_argument("specs", nargs="+", help="built-in spec names or recordings (.jsonl.gz)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--model", choices=MODELS, action="append")
    args = parser.parse_args(argv)
    for spec in args.specs:
        path = Path(spec) if spec.endswith(".gz") else default_path(spec)
        curves = Curves.load(path)
        for model in args.model or ["forest", "knn"]:
            print(validate(curves, model=model, folds=args.folds).line(), flush=True)
        reruns = rerun_path(path)
        if reruns.exists():
            print(noise_check(curves, Curves.load(reruns)).line(), flush=True)


if __name__ == "__main__":
    main()
