"""Trains a small fraud classifier in PyTorch and saves it for ``'runtime' = 'pytorch'``.

The network (4 → 16 → 2, softmax) learns the synthetic fraud pattern of
``fraud_data.py`` from four numeric features (amount, hour_of_day, user_age,
txn_velocity_24h). It writes, into the directory given as the first argument:

  fraud_mlp.pt2          a torch.export program: one input ``features`` [rows, 4] float32,
                         output probabilities [rows, 2]
  fraud_mlp_script.pt    the same network as TorchScript
  fraud_mlp_named.pt2    the same network taking four inputs named as the columns
                         (each [rows] float32), output [rows, 2]

Run: python3 models/make_torch_model.py OUT_DIR   (needs torch and numpy)
"""

import os
import sys

import numpy as np
import torch
from fraud_data import FEATURES, synthetic


class FraudMlp(torch.nn.Module):
    """Scales the raw features, then two linear layers and a softmax."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.hidden = torch.nn.Linear(4, 16)
        self.out = torch.nn.Linear(16, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) / self.std
        return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)


class NamedInputs(torch.nn.Module):
    """The same network with one input per feature column."""

    def __init__(self, mlp: FraudMlp) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(
        self, amount: torch.Tensor, hour_of_day: torch.Tensor, user_age: torch.Tensor, txn_velocity_24h: torch.Tensor
    ) -> torch.Tensor:
        return self.mlp(torch.stack([amount, hour_of_day, user_age, txn_velocity_24h], dim=1))


def train() -> FraudMlp:
    """A deterministic training run of a few hundred full-batch steps."""
    torch.manual_seed(7)
    features, labels = synthetic(4000, seed=11)
    model = FraudMlp(features.mean(axis=0), features.std(axis=0))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.from_numpy(features), torch.from_numpy(labels)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(model(x) + 1e-9), y)
        loss.backward()
        optimizer.step()
    model.eval()
    return model


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    model = train()
    batch = torch.export.Dim("batch", min=1)
    example = torch.zeros(8, 4)
    program = torch.export.export(model, (example,), dynamic_shapes={"features": {0: batch}})
    torch.export.save(program, os.path.join(out, "fraud_mlp.pt2"))
    torch.jit.script(model).save(os.path.join(out, "fraud_mlp_script.pt"))
    named = NamedInputs(model)
    columns = tuple(torch.zeros(8) for _ in FEATURES)
    program = torch.export.export(named, columns, dynamic_shapes={name: {0: batch} for name in FEATURES})
    torch.export.save(program, os.path.join(out, "fraud_mlp_named.pt2"))
    features, labels = synthetic(1000, seed=12)
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(features)).argmax(dim=1).numpy() == labels).mean()
    print(f"wrote fraud_mlp.pt2, fraud_mlp_script.pt and fraud_mlp_named.pt2 to {out} (accuracy {accuracy:.3f})")


if __name__ == "__main__":
    main()
