"""Write Fashion-MNIST (the Debian package dataset-fashion-mnist's idx files) as an image-folder tree:
OUT/train/<n>_<class>/<index>.png and OUT/test/<n>_<class>/<index>.png, 28x28 grayscale PNGs
(the source: images loader resizes them). The class folders sort in label order (0_t-shirt .. 9_ankle-boot).

    python3 -m edgeq.tools.fashion_mnist_images data/fashion-mnist-images [--per-class N] [--force]

The tree is written beside OUT and renamed into place when complete: an interrupted run leaves no
half-tree that a pipeline would read as the dataset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from edgeq.data.datasets import read_idx

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def class_dir(label: int) -> str:
    return f"{label}_{CLASSES[label]}"


def _write_split(out: Path, x: np.ndarray, y: np.ndarray, per_class: int | None) -> int:
    from PIL import Image

    rows = np.arange(len(y))
    if per_class is not None:  # the first N of each class, in file order
        rows = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(len(CLASSES))])
    for c in range(len(CLASSES)):
        (out / class_dir(c)).mkdir(parents=True, exist_ok=True)

    def save(i: int) -> None:
        Image.fromarray(np.ascontiguousarray(x[i])).save(out / class_dir(int(y[i])) / f"{i:05d}.png")

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(save, rows, chunksize=256))
    return len(rows)


def write_tree(out: Path, source: Path = SOURCE, per_class: int | None = None, force: bool = False) -> dict[str, int]:
    """Write the tree; returns {split: images written}. OUT must not exist unless force."""
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists (pass --force to replace it)")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        counts = {}
        for split, (images, labels) in FILES.items():
            x, y = read_idx(source / images), read_idx(source / labels)
            counts[split] = _write_split(tmp / split, x, y, per_class)
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="folder to create, e.g. data/fashion-mnist-images")
    ap.add_argument("--source", type=Path, default=SOURCE, help=f"folder of the idx files (default {SOURCE})")
    ap.add_argument("--per-class", type=int, default=None, help="only the first N images of each class per split")
    ap.add_argument("--force", action="store_true", help="replace OUT if it exists")
    a = ap.parse_args(argv)
    from edgeq.errors import EdgeqError

    try:
        counts = write_tree(a.out, a.source, a.per_class, a.force)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except EdgeqError as e:  # the idx files: missing or truncated
        print(f"error: {e.message}\nhint: {e.hint}", file=sys.stderr)
        return int(e.exit_code)
    print(f"wrote {counts['train']} train and {counts['test']} test PNGs under {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
