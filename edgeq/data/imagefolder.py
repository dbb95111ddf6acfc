"""Image-folder datasets (data.source: images): scan the tree, decode once with Pillow, cache the pixels.

Layouts (the ImageFolder layout of Keras and torchvision): PATH/<class>/**/*.png|jpg, or
PATH/train/<class>/..., with optional PATH/val/ and PATH/test/ alongside. Class index = position of the
class folder's name in sorted order (train/'s names in the split layout).

The decoded pixels (uint8, resized, RGB or grayscale) are cached under <cache>/<key>/x.npy, where the key
hashes the listing: every file's relative path, size and mtime (nanoseconds), plus size and color. A
listing, not the files' content: hashing 70,000 files' bytes costs a full read of the tree on every run,
while a stat of each is what lets a warm load take about a second. An edit that keeps a file's size and
mtime (`touch -r`, a restored backup with old mtimes and equal sizes) goes unnoticed: delete the cache
folder, or run with --force, after such a change. Copies that keep mtimes (cp -a, rsync -a) still hit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.errors import DataError
from edgeq.progress import tracker

SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
SPLITS = ("train", "val", "test")  # split codes 0, 1, 2; -1: not split by folder
DECODE_VERSION = 1  # bump when decoding changes (resampling filter, color conversion)
# a temp folder this old is a killed run's: no decode of a tree takes a day (70,000 PNGs: under a minute)
STALE_TMP_S = 24 * 3600.0
_CHUNK = 512  # images per decode task: large enough that handing pixels back costs little
_PARALLEL_FROM = 4 * _CHUNK  # fewer images decode in this process


@dataclass(frozen=True)
class Tree:
    root: Path
    classes: tuple[str, ...]
    files: tuple[str, ...]  # relative to root
    labels: np.ndarray  # class index per file
    split: np.ndarray  # SPLITS index per file, -1 when the tree has no split folders
    listing_sha256: str  # relative path, size, mtime_ns of every file

    @property
    def has_split_folders(self) -> bool:
        return bool(len(self.split)) and int(self.split[0]) >= 0


def _images_under(folder: Path, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to the tree's root, stat) of every image under folder, sorted, hidden names skipped."""
    with os.scandir(folder) as it:
        entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    for e in entries:
        if e.is_dir():
            yield from _images_under(Path(e.path), f"{rel}/{e.name}")
        elif os.path.splitext(e.name)[1].lower() in SUFFIXES:
            yield f"{rel}/{e.name}", e.stat()


def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def scan(root: Path) -> Tree:
    """List the tree (no decoding). Missing folder, no classes, an empty class folder: DataError."""
    if not root.is_dir():
        hint = "data.path must be a folder of class folders (or of train/ val/ test/)"
        if "fashion-mnist" in root.name:
            hint = f"write it with: python3 -m edgeq.tools.fashion_mnist_images {root}"
        raise DataError(f"image folder not found: {root}", hint)
    split_layout = (root / "train").is_dir()
    parts = [(i, root / s) for i, s in enumerate(SPLITS) if (root / s).is_dir()] if split_layout else [(-1, root)]
    classes = _class_dirs(parts[0][1])
    if len(classes) < 2:
        raise DataError(
            f"{parts[0][1]}: found {len(classes)} class folder(s), need at least 2",
            "put each class's images in a folder named after the class",
        )
    index = {c: i for i, c in enumerate(classes)}
    files, labels, split, h = [], [], [], hashlib.sha256()
    for code, folder in parts:
        for c in _class_dirs(folder):
            if c not in index:
                raise DataError(
                    f"{folder / c}: class {c!r} is not among the train/ classes {list(classes)}",
                    "every class of val/ and test/ needs a folder under train/ too",
                )
            n = 0
            prefix = c if code < 0 else f"{SPLITS[code]}/{c}"
            for rel, st in _images_under(folder / c, prefix):
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
                files.append(rel)
                labels.append(index[c])
                split.append(code)
                n += 1
            if n == 0 and code in (-1, 0):
                raise DataError(
                    f"{folder / c}: no images ({', '.join(sorted(SUFFIXES))})", "remove the empty class folder or add images"
                )
    return Tree(root, tuple(classes), tuple(files), np.array(labels, np.int64), np.array(split, np.int64), h.hexdigest())


def cache_key(tree: Tree, size: tuple[int, int], color: str) -> str:
    doc = {"v": DECODE_VERSION, "listing": tree.listing_sha256, "size": list(size), "color": color}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def _decode_one(path: Path, size: tuple[int, int], color: str) -> np.ndarray:
    from PIL import Image

    h, w = size
    mode = "RGB" if color == "rgb" else "L"
    try:
        with Image.open(path) as f:
            f.draft(mode, (w, h))  # JPEG: decode at a reduced scale when that still covers (w, h)
            im: Image.Image = f
            if im.size != (w, h) and im.mode in ("L", "RGB"):
                im = im.resize((w, h), Image.Resampling.BILINEAR)  # before convert: a gray source resizes 1 channel, not 3
            im = im.convert(mode)
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(
            f"{path}: cannot decode image ({type(e).__name__}: {e})", "the file is corrupt or not an image: replace or remove it"
        ) from None


def _decode_chunk(root: str, files: list[str], size: tuple[int, int], color: str) -> np.ndarray | str:
    """Decode files (a worker's share): their pixels, or the DataError's message of the first bad one
    (returned, not raised: an exception pickled back from a worker process loses its hint)."""
    out = np.empty((len(files), *size, 3 if color == "rgb" else 1), np.uint8)
    try:
        for i, f in enumerate(files):
            a = _decode_one(Path(root) / f, size, color)
            out[i] = a if a.ndim == 3 else a[..., None]
    except DataError as e:
        return e.message
    return out


def decode(tree: Tree, size: tuple[int, int], color: str, workers: int | None = None) -> np.ndarray:
    """Every image of the tree as uint8 [N, H, W, C]. Worker processes for big trees: Pillow's PNG chunk
    parsing is Python holding the GIL, so threads do not scale; spawned, not forked (TensorFlow may be
    loaded in this process). Small trees decode here: a worker's start costs more than they do."""
    n = len(tree.files)
    n_workers = workers or min(4, os.cpu_count() or 1)
    out = np.empty((n, *size, 3 if color == "rgb" else 1), np.uint8)
    advance = tracker()
    starts = range(0, n, _CHUNK)
    if n_workers == 1 or n < _PARALLEL_FROM:
        parts = (_decode_chunk(str(tree.root), list(tree.files[s : s + _CHUNK]), size, color) for s in starts)
        _gather(parts, starts, out, advance)
        return out
    import multiprocessing
    from concurrent.futures.process import BrokenProcessPool

    try:
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_decode_chunk, str(tree.root), list(tree.files[s : s + _CHUNK]), size, color) for s in starts]
            try:
                _gather((f.result() for f in futures), starts, out, advance)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    except BrokenProcessPool:  # workers could not start (a __main__ spawn cannot re-import, e.g. stdin): decode here
        return decode(tree, size, color, workers=1)
    return out


def _gather(parts: Iterator[np.ndarray | str], starts: range, out: np.ndarray, advance) -> None:
    for s, part in zip(starts, parts, strict=False):
        if isinstance(part, str):
            raise DataError(part, "the file is corrupt or not an image: replace or remove it")
        out[s : s + len(part)] = part
        advance("decode images", s + len(part), len(out))


def load_pixels(tree: Tree, size: tuple[int, int], color: str, cache_dir: Path | None) -> tuple[np.ndarray, bool]:
    """(uint8 pixels of every file of the tree, whether the cache answered). A damaged cache entry is a miss."""
    if cache_dir is None:
        return decode(tree, size, color), False
    entry = cache_dir / cache_key(tree, size, color)
    shape = (len(tree.files), *size, 3 if color == "rgb" else 1)
    try:
        x = np.load(entry / "x.npy", mmap_mode="r")
        if x.shape == shape and x.dtype == np.uint8:
            return x, True
    except (OSError, ValueError):
        pass  # absent, truncated or not an npy file: decode again
    x = decode(tree, size, color)
    _store(entry, x, tree)
    return x, False


def _store(entry: Path, x: np.ndarray, tree: Tree) -> None:
    """Write into a temp folder, then rename it into place: a crash never leaves a half-written entry."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    for old in entry.parent.glob(".*.*.*"):  # left by a killed run (a clean exit removes its own)
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(old, ignore_errors=True)
    tmp = entry.parent / f".{entry.name}.{os.getpid()}.{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        with open(tmp / "x.npy", "wb") as f:
            np.save(f, x)
            f.flush()
            os.fsync(f.fileno())
        meta = {"root": str(tree.root), "files": len(tree.files), "classes": list(tree.classes), "shape": list(x.shape)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if entry.exists():  # a stale or damaged entry (a good one was a hit): replace it
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(tmp, entry)
        except OSError:
            pass  # another run published the same key first: its pixels are the same
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stratified(labels: np.ndarray, frac: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) positions into labels: round(frac * n) of each class held out, seeded."""
    kept, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(len(idx) * frac))
        held.append(idx[:n])
        kept.append(idx[n:])
    return np.concatenate(kept), np.concatenate(held)
