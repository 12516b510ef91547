"""`Ensemble`: the networks of a k-fold (or repeated) run as one model that averages them.

A config with `folds` or `repeats` > 1 trains several networks (`cross_fit`); as one model they
predict together: each member sees the inputs in its own fold's standardisation
(`FoldScaling`), and the ensemble returns the mean of the members' class probabilities (as
log-probabilities, so that `evaluate`'s cross-entropy and argmax read it as logits) or, for
regression, the mean of their values (in the whole split's standardised units).

Its state dict holds every member's weights (``members.<i>.<name>``) and the fold scalings
(buffers ``x_shift``, ``x_scale``, ``y_shift``, ``y_scale``, one row per member), so a kept
ensemble is scored from its file alone (`load_model` builds the skeleton `empty_ensemble`
gives and loads it strictly).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from trainer._config import TrainConfig
from trainer._data import Data
from trainer._evaluate import layout
from trainer._folds import CrossResult, FoldScaling, member_seed
from trainer._models import model_for

TINY = 1e-12  # the smallest mean probability: log(0) would make the loss infinite


class Ensemble(nn.Module):
    """Averages its members' predictions; see the module's docstring."""

    x_shift: torch.Tensor
    x_scale: torch.Tensor
    y_shift: torch.Tensor
    y_scale: torch.Tensor

    def __init__(
        self, members: Sequence[nn.Module], scalings: Sequence[FoldScaling], *, task: str
    ) -> None:
        super().__init__()
        if not members or len(members) != len(scalings):
            raise ValueError(
                f"an ensemble needs one scaling per member, and at least one member: got "
                f"{len(members)} members and {len(scalings)} scalings"
            )
        self.task = task
        self.members = nn.ModuleList(members)
        for name in ("x_shift", "x_scale", "y_shift", "y_scale"):
            self.register_buffer(name, torch.stack([getattr(s, name) for s in scalings]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for i, member in enumerate(self.members):
            out = member(layout((x - self.x_shift[i]) / self.x_scale[i], member))
            if self.task == "regression":
                outputs.append(out.reshape(len(x), -1) * self.y_scale[i] + self.y_shift[i])
            else:
                outputs.append(out.float().softmax(dim=1))
        mean = torch.stack(outputs).mean(dim=0)
        return mean if self.task == "regression" else mean.clamp_min(TINY).log()


def ensemble_of(result: CrossResult) -> Ensemble:
    """The ensemble of a `cross_fit`'s members, each at its best epoch's weights.

    Raises:
        ValueError: a member had no epoch with a finite dev loss (it diverged): such a run
            has no ensemble.
    """
    lost = [i for i, m in enumerate(result.members) if m.best is None]
    if lost:
        raise ValueError(
            f"members {lost} of the run have no epoch with a finite dev loss (they diverged): "
            f"there is no ensemble to score; lower lr or export a trial whose networks all "
            f"trained"
        )
    return Ensemble([m.model for m in result.members], result.scalings, task=result.task)


def empty_ensemble(
    config: TrainConfig, data: Data, *, search_path: Sequence[str | Path] = ()
) -> Ensemble:
    """The ensemble a config of several networks trains, untrained (its scalings the
    identity): the skeleton a kept ensemble's state dict is loaded into."""
    members = []
    for repeat in range(config.repeats):
        member = config.replace(folds=1, repeats=1, seed=member_seed(config.seed, repeat))
        for _ in range(config.folds):
            members.append(model_for(member, data, search_path=search_path)[0])
    scalings = [FoldScaling.identity(data)] * len(members)
    return Ensemble(members, scalings, task=config.task)
