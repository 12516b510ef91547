"""The baseline of `study_vs_baseline.py`: a search written the way the Optuna examples do it.

One objective function that mixes `trial.suggest_*`, the model, a torch `DataLoader` over
torchvision's MNIST (`ToTensor` + `Normalize`), the training loop with `.item()` per batch,
and `trial.report` / `should_prune`; TPE and the median pruner; `sqlite:///` storage. The
search space and the epoch cap are those of hpstudy's built-in `mnist-mlp` spec, and the
dev split is the same 6000 images, so both searches solve the same problem.

Run several copies on one storage for parallel workers (the Optuna docs' way). Every epoch
appends one JSON line (time, trial, epoch, dev accuracy) to `--log`, for the comparison;
that is measurement, not part of the search.

    python benchmarks/baseline_optuna.py --storage sqlite:///base.db --timeout 1500 --log b.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

EPOCHS = 15  # the epoch cap of the mnist-mlp spec
BATCH_SIZE = 64
HIDDEN = (300, 100)
DEV_SIZE = 6000  # the trainer's dev_fraction 0.1 of 60000, same split seed 0


def split_indices() -> tuple[list[int], list[int]]:
    order = np.random.default_rng(0).permutation(60000)
    return order[DEV_SIZE:].tolist(), order[:DEV_SIZE].tolist()


def define_model(trial: optuna.Trial) -> nn.Module:
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    batch_norm = trial.suggest_categorical("batch_norm", [False, True])
    init = trial.suggest_categorical(
        "init",
        [
            "glorot_normal",
            "glorot_uniform",
            "he_normal",
            "he_uniform",
            "lecun_normal",
            "lecun_uniform",
        ],
    )
    layers: list[nn.Module] = [nn.Flatten()]
    in_features = 28 * 28
    for width in HIDDEN:
        layers.append(nn.Linear(in_features, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_features = width
    layers.append(nn.Linear(in_features, 10))
    model = nn.Sequential(*layers)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if init.startswith("glorot"):
                (nn.init.xavier_normal_ if init.endswith("normal") else nn.init.xavier_uniform_)(
                    module.weight
                )
            elif init.startswith("he"):
                fn = (
                    nn.init.kaiming_normal_ if init.endswith("normal") else nn.init.kaiming_uniform_
                )
                fn(module.weight, nonlinearity="relu")
            else:
                fn = (
                    nn.init.kaiming_normal_ if init.endswith("normal") else nn.init.kaiming_uniform_
                )
                fn(module.weight, nonlinearity="linear")
            nn.init.zeros_(module.bias)
    return model


def make_optimizer(trial: optuna.Trial, model: nn.Module) -> torch.optim.Optimizer:
    lr = trial.suggest_float("lr", 1e-4, 0.5, log=True)
    name = trial.suggest_categorical("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
    weight_decay = trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True)
    if name == "sgd":
        momentum = trial.suggest_float("momentum", 0.0, 0.99)
        nesterov = trial.suggest_categorical("nesterov", [False, True])
        return torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=momentum,
            nesterov=nesterov and momentum > 0,
            weight_decay=weight_decay,
        )
    if name == "rmsprop":
        momentum = trial.suggest_float("momentum", 0.0, 0.99)
        return torch.optim.RMSprop(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    if name == "adagrad":
        return torch.optim.Adagrad(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


def make_schedule(trial: optuna.Trial, optimizer: torch.optim.Optimizer):  # type: ignore[no-untyped-def]
    kind = trial.suggest_categorical(
        "schedule", ["constant", "piecewise", "step", "exponential", "reduce_on_plateau", "cosine"]
    )
    sched = torch.optim.lr_scheduler
    if kind == "piecewise":
        milestones = trial.suggest_categorical("milestones", ["6-10", "5-9-12"])
        gamma = trial.suggest_float("gamma", 0.1, 0.9)
        return sched.MultiStepLR(optimizer, [int(m) for m in milestones.split("-")], gamma)
    if kind == "step":
        step_size = trial.suggest_int("step_size", 3, 6)
        gamma = trial.suggest_float("gamma", 0.1, 0.9)
        return sched.StepLR(optimizer, step_size, gamma)
    if kind == "exponential":
        return sched.ExponentialLR(optimizer, trial.suggest_float("gamma", 0.1, 0.9))
    if kind == "reduce_on_plateau":
        factor = trial.suggest_float("plateau_factor", 0.1, 0.5)
        return sched.ReduceLROnPlateau(optimizer, factor=factor, patience=2)
    if kind == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=EPOCHS)
    return sched.LambdaLR(optimizer, lambda _: 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="baseline")
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--log", required=True, help="JSON lines: one per epoch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )
    mnist = datasets.MNIST(args.data_dir, train=True, download=False, transform=transform)
    train_idx, dev_idx = split_indices()
    train_set, dev_set = Subset(mnist, train_idx), Subset(mnist, dev_idx)
    log = open(args.log, "a")  # noqa: SIM115 - open for the whole run

    def objective(trial: optuna.Trial) -> float:
        model = define_model(trial)
        optimizer = make_optimizer(trial, model)
        schedule = make_schedule(trial, optimizer)
        train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True)
        dev_loader = DataLoader(dev_set, batch_size=1000)
        best = float("inf")
        for epoch in range(EPOCHS):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
                _ = loss.item()  # the examples log/accumulate the batch loss this way
            model.eval()
            total, correct = 0.0, 0
            with torch.no_grad():
                for x, y in dev_loader:
                    out = model(x)
                    total += F.cross_entropy(out, y, reduction="sum").item()
                    correct += (out.argmax(1) == y).sum().item()
            dev_loss, dev_acc = total / len(dev_set), correct / len(dev_set)
            if isinstance(schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                schedule.step(dev_loss)
            else:
                schedule.step()
            log.write(
                json.dumps(
                    {
                        "time": time.time(),
                        "trial": trial.number,
                        "epoch": epoch,
                        "dev_accuracy": dev_acc,
                        "dev_loss": dev_loss,
                    }
                )
                + "\n"
            )
            log.flush()
            best = min(best, dev_loss) if np.isfinite(dev_loss) else best
            trial.report(dev_loss, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    study = optuna.create_study(
        study_name=args.study,
        storage=args.storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.MedianPruner(),
        load_if_exists=True,
    )
    study.optimize(objective, timeout=args.timeout, catch=(ValueError, RuntimeError))


if __name__ == "__main__":
    main()
