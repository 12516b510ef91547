"""Sources of user code the tests write to disk: model factories and data loaders."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

MODELS = textwrap.dedent(
    '''
    from torch import nn

    WIDTH = 8


    def build(input_shape, num_classes, width=8, depth=1, dropout=0.0):
        """A flat MLP: `depth` hidden layers of `width` units."""
        features = 1
        for size in input_shape:
            features *= size
        layers = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU(), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, num_classes))
        return nn.Sequential(*layers)


    def build_strict(input_shape, num_classes, width):
        return build(input_shape, num_classes, width=width)


    def build_open(input_shape, num_classes, **options):
        build_open.seen = options
        return build(input_shape, num_classes)


    def build_no_shape(width=8):
        return nn.Linear(width, 2)


    def build_wrong_width(input_shape, num_classes):
        return build(input_shape, num_classes + 1)


    def build_broken(input_shape, num_classes):
        return nn.Linear(7, num_classes)  # 7 inputs, whatever the data has


    def build_raising(input_shape, num_classes):
        raise RuntimeError("no GPU here")


    def build_not_a_module(input_shape, num_classes):
        return "a network"


    def build_one_output(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[-1], 1), nn.Flatten(0))


    class Deep(nn.Module):
        """Linear and conv layers inside nested containers, for init schemes."""

        def __init__(self, input_shape, num_classes):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv1d(8, 64, 5), nn.ReLU())
            self.body = nn.ModuleDict(
                {"volume": nn.Conv3d(2, 64, 3), "plane": nn.Conv2d(64, 64, 3)}
            )
            self.head = nn.ModuleList([nn.Linear(400, 500), nn.Linear(500, num_classes)])

        def forward(self, x):
            return self.head[1](self.head[0](x.flatten(1)))
    '''
)

LOADERS = textwrap.dedent(
    """
    import numpy as np
    import torch


    def arrays():
        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 3)).astype(np.float32)
        return {"x_train": x, "y_train": (x[:, 0] > 0).astype(np.int64),
                "x_test": torch.zeros(5, 3), "y_test": torch.ones(5, dtype=torch.long)}


    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 50

        def __getitem__(self, i):
            return torch.full((2,), float(i)), torch.tensor([2.0 * i, -float(i)])


    def dataset():
        return Pairs()


    def with_dir(data_dir):
        x = np.full((20, 2), float(len(data_dir)))
        return {"x_train": x, "y_train": np.arange(20) % 2}


    def nan_inputs():
        x = np.ones((20, 2))
        x[4, 1] = np.nan
        return {"x_train": x, "y_train": np.arange(20) % 2}


    def a_list():
        return [1, 2, 3]
    """
)


def write_package(root: Path, source: str) -> str:
    """Writes `source` as module `nets` of a fresh package under `root`; returns its dotted name."""
    name = f"userpkg_{uuid.uuid4().hex[:8]}"  # unique: imported modules stay in sys.modules
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "nets.py").write_text(source)
    return f"{name}.nets"
