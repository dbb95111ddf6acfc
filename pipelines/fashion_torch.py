"""A PyTorch model for pipelines/from-torch.yaml (model.torch: fashion_torch:build).

Train it once (PyTorch on the CPU, about a minute on 2 cores; reads the Debian package dataset-fashion-mnist,
nothing is downloaded), from the repository root:

    python3 pipelines/fashion_torch.py data/fashion-torch.pt [--epochs 3] [--max-train N]

build() returns the trained network in eval mode; edgeq converts it with litert-torch (edgeq[torch]).
The network takes NCHW [N, 1, 28, 28] pixels scaled to [0, 1] (data.preprocess: scale) and returns class
probabilities.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import torch
    from torch import nn
except ImportError as e:  # run as a script without the extra: say what to install, no traceback
    if __name__ == "__main__":
        sys.exit(f"error: fashion_torch.py needs PyTorch ({e})\nhint: pip install -e '.[torch]'")
    raise

HERE = Path(__file__).resolve().parent
WEIGHTS = Path(os.environ.get("EDGEQ_TORCH_WEIGHTS", HERE.parent / "data" / "fashion-torch.pt"))


class FashionCNN(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.features(x)), dim=-1)


def build(num_classes: int) -> nn.Module:
    """The trained network (edgeq calls this with the dataset's number of classes)."""
    if not WEIGHTS.is_file():
        raise FileNotFoundError(f"{WEIGHTS}: train it first: python3 pipelines/fashion_torch.py {WEIGHTS}")
    net = FashionCNN(num_classes)
    net.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return net.eval()


def train(out: Path, epochs: int, max_train: int | None, seed: int = 0) -> float:
    """Train on the Debian package's Fashion-MNIST; write the state dict atomically; return test accuracy."""
    sys.path.insert(0, str(HERE.parent))
    from edgeq.data.datasets import read_idx

    src = Path("/usr/share/datasets/fashion-mnist")
    x = torch.from_numpy(read_idx(src / "train-images-idx3-ubyte.gz")[:max_train].copy()).float().div(255).unsqueeze(1)
    y = torch.from_numpy(read_idx(src / "train-labels-idx1-ubyte.gz")[:max_train].copy()).long()
    xt = torch.from_numpy(read_idx(src / "t10k-images-idx3-ubyte.gz").copy()).float().div(255).unsqueeze(1)
    yt = torch.from_numpy(read_idx(src / "t10k-labels-idx1-ubyte.gz").copy()).long()
    torch.manual_seed(seed)
    net = FashionCNN()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = order[i : i + 128]
            opt.zero_grad()
            logits = net.head(net.features(x[idx]))
            nn.functional.cross_entropy(logits, y[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            acc = float((net(xt).argmax(-1) == yt).float().mean())
        print(f"epoch {epoch + 1}/{epochs}: test accuracy {acc:.4f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, out)
    return acc


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="train the PyTorch Fashion-MNIST CNN of pipelines/from-torch.yaml")
    ap.add_argument("out", type=Path, nargs="?", default=WEIGHTS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-train", type=int, default=None)
    a = ap.parse_args()
    train(a.out, a.epochs, a.max_train)
    print(f"wrote {a.out}")
