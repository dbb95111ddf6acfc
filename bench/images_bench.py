"""Issue 14 number: an image folder of 70,000 PNGs (Fashion-MNIST written out by edgeq.tools.fashion_mnist_images)
decoded and cached in <= 60 s cold, loaded in <= 2 s warm.

Run:  python bench/images_bench.py [--tree DIR] [--size 96] [--color rgb] [--workers N]
Without --tree the tree is written to a temp folder first (about 30 s, not timed). Cold: an empty decode cache
(the PNGs themselves may sit in the OS page cache: the bench does not drop it, the machine is shared). Warm:
the listing (stat per file, which is the cache key) plus reading every cached pixel into memory.
Also times data.load (splits + float32 preprocessing) warm, which a pipeline run pays on top.
Writes a dated section to bench/RESULTS.md and prints the same table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.config import DataSpec  # noqa: E402
from edgeq.data import datasets as data  # noqa: E402
from edgeq.data import imagefolder  # noqa: E402
from edgeq.tools.fashion_mnist_images import write_tree  # noqa: E402

COLD_TARGET_S, WARM_TARGET_S = 60.0, 2.0


def timed_load(root: Path, size: tuple[int, int], color: str, cache: Path, workers: int | None) -> tuple[float, float, bool]:
    t0 = time.perf_counter()
    tree = imagefolder.scan(root)
    t_scan = time.perf_counter() - t0
    if workers is not None:  # the loader's own default otherwise
        x, hit = imagefolder.decode(tree, size, color, workers), False
        imagefolder._store(cache / imagefolder.cache_key(tree, size, color), x, tree)
    else:
        x, hit = imagefolder.load_pixels(tree, size, color, cache)
    pixels = np.array(x)  # every byte read: a warm load is not just an mmap
    assert pixels.shape[0] == len(tree.files) == 70000 or pixels.shape[0] == len(tree.files)
    return time.perf_counter() - t0, t_scan, hit


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path, help="an existing Fashion-MNIST image tree (default: write one to a temp folder)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--color", choices=("rgb", "grayscale"), default="rgb")
    ap.add_argument("--workers", type=int, default=None, help="decode worker processes (default: the loader's, min(4, cores))")
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    size = (a.size, a.size)
    with tempfile.TemporaryDirectory(prefix="edgeq-images-bench-") as td:
        root = a.tree or Path(td) / "fashion-mnist-images"
        if a.tree is None:
            write_tree(root)
        cache = Path(td) / "cache"
        cold, cold_scan, hit = timed_load(root, size, a.color, cache, a.workers)
        assert not hit
        warm_runs = [timed_load(root, size, a.color, cache, None) for _ in range(3)]
        assert all(h for _, _, h in warm_runs)
        warm = min(t for t, _, _ in warm_runs)
        warm_scan = min(s for _, s, _ in warm_runs)
        spec = DataSpec(source="images", path=str(root), image_size=list(size), color=a.color, preprocess="mobilenet")
        t0 = time.perf_counter()
        ds = data.load(spec, Path("."), 42, cache)
        t_dataset = time.perf_counter() - t0
        n = len(imagefolder.scan(root).files)
        cache_mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 1e6
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())

    def verdict(t: float, target: float) -> str:
        return f"{t:.2f} s | <= {target:.0f} s | {'ok' if t <= target else 'MISSED'}"

    gb = ds.x_train.nbytes / 1e9
    rows = [
        f"| cold: decode {n:,} PNGs (28x28 gray -> {a.size}x{a.size} {a.color}) + write cache | {verdict(cold, COLD_TARGET_S)} |",
        f"| warm: listing (stat per file, {warm_scan:.2f} s) + cached pixels read, best of 3 | {verdict(warm, WARM_TARGET_S)} |",
        f"| warm data.load: + splits, float32 mobilenet preprocessing ({gb:.1f} GB train array) | {t_dataset:.2f} s | - | - |",
    ]
    body = (
        f"Fashion-MNIST as an image-folder tree (edgeq.tools.fashion_mnist_images: {n:,} PNGs, train/ and test/), "
        f"source: images at {a.size}x{a.size} {a.color}; decode processes: {a.workers or 'min(4, cores)'}; decode cache "
        f"{cache_mb:,.0f} MB (uint8 .npy). Cold includes the listing ({cold_scan:.2f} s). The PNGs were in the OS "
        "page cache (not dropped: shared machine).\n\n"
        f"- load average at the end: {load} (the machine is shared)\n\n"
        "| step | time | target | |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    print(body)
    if not a.no_record:
        append_results("image-folder loading (source: images)", "python bench/images_bench.py " + " ".join(sys.argv[1:]), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
