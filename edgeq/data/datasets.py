"""Dataset sources (idx, sklearn-digits, npz, image folders) and preprocessing. numpy only: no TensorFlow here."""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq import paths
from edgeq.config import DataSpec
from edgeq.data import imagefolder
from edgeq.errors import DataError

# scikit-learn's bundled digits (1797 8x8 images, values 0..16), shipped as uint8 so that running a
# pipeline needs no scikit-learn; tests/unit/test_skel.py checks it equals load_digits().
DIGITS_FILE = Path(__file__).parent.parent / "bundled" / "digits.npz"

# idx dtype codes (http://yann.lecun.com/exdb/mnist/ file format)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    norm: dict  # how inputs were preprocessed (kept in the manifest; boards need it for real inputs)
    class_names: tuple[str, ...] = ()  # images: the class folders, by class index

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (gzipped or not). Truncated or malformed files raise DataError."""
    if not path.exists():
        raise DataError(f"dataset file not found: {path}", "check data.path and the file names in the pipeline YAML")
    try:
        with _open(path) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(
            f"{path}: cannot read ({e}); the file is truncated or corrupt", "download or copy the file again"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an idx file (bad magic number)", "idx files start with 0x00 0x00 <dtype> <ndim>")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header", "download or copy the file again")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        raise DataError(
            f"{path}: truncated idx file: header says {dims} ({expected} bytes of data), file has {got}",
            "download or copy the file again",
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_files(spec: DataSpec, base: Path) -> list[Path]:
    if spec.source == "idx":
        d = _resolve(spec.path, base)
        return [d / spec.train_images, d / spec.train_labels, d / spec.test_images, d / spec.test_labels]
    if spec.source == "npz":
        return [_resolve(spec.path, base)]
    return []


def _resolve(p: str | None, base: Path) -> Path:
    path = Path(p or "").expanduser()
    return path if path.is_absolute() else base / path


def fingerprint(spec: DataSpec, base: Path) -> dict:
    """Content hashes of the inputs, without decoding them: cheap enough for every cached run."""
    if spec.source == "sklearn-digits":
        return {"sklearn-digits": _file_sha256(DIGITS_FILE)}
    if spec.source == "images":
        tree = imagefolder.scan(_resolve(spec.path, base))
        return {"images": str(tree.root), "files": len(tree.files), "listing_sha256": tree.listing_sha256}
    out = {}
    for f in source_files(spec, base):
        if not f.exists():
            raise DataError(f"dataset file not found: {f}", _missing_hint(spec, f))
        out[str(f)] = _file_sha256(f)
    return out


def _missing_hint(spec: DataSpec, f: Path) -> str:
    if "fashion-mnist" in str(f):
        return "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
    return "check data.path and the file names in the pipeline YAML"


def _raw(spec: DataSpec, base: Path, seed: int):
    if spec.source == "sklearn-digits":
        with np.load(DIGITS_FILE, allow_pickle=False) as z:
            images, target = z["images"], z["target"]
        x = images.astype(np.float32)[..., None] / 16.0 * 255.0  # 8x8x1, same scale as idx images
        y = target.astype(np.int64)
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(x))
        n_test = int(round(len(x) * spec.test_split))
        te, tr = idx[:n_test], idx[n_test:]
        return x[tr], y[tr], x[te], y[te]
    if spec.source == "idx":
        files = source_files(spec, base)
        for f in files:
            if not f.exists():
                raise DataError(f"dataset file not found: {f}", _missing_hint(spec, f))
        xtr, ytr, xte, yte = (read_idx(f) for f in files)
        for x, y, fx, fy in ((xtr, ytr, files[0], files[1]), (xte, yte, files[2], files[3])):
            if len(x) != len(y):
                raise DataError(
                    f"{fx.name} has {len(x)} images but {fy.name} has {len(y)} labels",
                    "image and label files must come from the same split",
                )
        xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
        if xtr.ndim == 3:
            xtr, xte = xtr[..., None], xte[..., None]
        return xtr, ytr.astype(np.int64), xte, yte.astype(np.int64)
    path = _resolve(spec.path, base)
    if not path.exists():
        raise DataError(f"dataset file not found: {path}", "check data.path in the pipeline YAML")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}", "an npz source needs x_train, y_train, x_test, y_test")
            xtr, ytr, xte, yte = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except DataError:
        raise
    except Exception as e:  # zipfile/pickle/value errors: all mean a bad file
        raise DataError(f"{path}: cannot read npz ({type(e).__name__}: {e})", "write it with numpy.savez") from None
    for x, y, name in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(x) != len(y):
            raise DataError(f"{path}: x_{name} has {len(x)} rows but y_{name} has {len(y)}", "rows of x and y must match")
    return xtr.astype(np.float32), ytr.astype(np.int64).reshape(-1), xte.astype(np.float32), yte.astype(np.int64).reshape(-1)


def load(spec: DataSpec, base: Path, seed: int, cache_dir: Path | None = None) -> Dataset:
    """Load, subset, split off validation data, and preprocess with training-set statistics.

    cache_dir: where decoded image folders are kept (default: the edgeq home's cache/images)."""
    if spec.source == "images":
        return _load_images(spec, base, seed, cache_dir or paths.home() / "cache" / "images")
    xtr, ytr, xte, yte = _raw(spec, base, seed)
    rng = np.random.default_rng(seed)
    if spec.max_train and len(xtr) > spec.max_train:
        keep = np.sort(rng.choice(len(xtr), spec.max_train, replace=False))
        xtr, ytr = xtr[keep], ytr[keep]
    if spec.max_test and len(xte) > spec.max_test:
        xte, yte = xte[: spec.max_test], yte[: spec.max_test]
    perm = rng.permutation(len(xtr))
    n_val = int(round(len(xtr) * spec.validation_split))
    xval, yval = xtr[perm[:n_val]], ytr[perm[:n_val]]
    xtr, ytr = xtr[perm[n_val:]], ytr[perm[n_val:]]
    _check_rows(xtr, xte)
    (xtr, xval, xte), norm = _preprocess(spec, xtr, xval, xte)
    classes = int(max(ytr.max(), yte.max())) + 1
    return Dataset(xtr, ytr, xval, yval, xte, yte, classes, norm)


def _check_rows(xtr: np.ndarray, xte: np.ndarray) -> None:
    if len(xtr) == 0 or len(xte) == 0:
        raise DataError(
            "the dataset has no training or no test rows after splitting", "lower validation_split or raise max_train/max_test"
        )


_AFFINE = {"unit": (1 / 255.0, 0.0), "mobilenet": (1 / 127.5, -1.0), "efficientnet": (1.0, 0.0)}


def _affine(a: np.ndarray, mul: float, add: float) -> np.ndarray:
    out = np.array(a, dtype=np.float32)  # one float32 copy, then in place: no float64 temporaries of big image sets
    if mul != 1.0:
        out *= np.float32(mul)
    if add:
        out += np.float32(add)
    return out


def _preprocess(spec: DataSpec, xtr: np.ndarray, xval: np.ndarray, xte: np.ndarray) -> tuple[tuple, dict]:
    kind = spec.preprocess
    if kind in ("scale", "none") and xtr.dtype == np.uint8:  # decoded images: 0..255 by construction
        kind = "unit" if kind == "scale" else "efficientnet"
    if kind in _AFFINE:
        mul, add = _AFFINE[kind]
        norm = {"kind": spec.preprocess, "multiply": mul, "add": add}  # x * multiply + add, x in 0..255
        return (_affine(xtr, mul, add), _affine(xval, mul, add), _affine(xte, mul, add)), norm
    if kind == "scale":
        hi = float(xtr.max()) if xtr.size else 1.0
        scale = 255.0 if hi > 1.0 else 1.0
        norm = {"kind": "scale", "divide_by": scale}
        f = lambda a: (a / scale).astype(np.float32)  # noqa: E731
    elif kind == "standardize":
        mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
        norm = {"kind": "standardize", "mean": mean, "std": std}
        f = lambda a: ((a - mean) / std).astype(np.float32)  # noqa: E731
    else:
        norm = {"kind": "none"}
        f = lambda a: a.astype(np.float32)  # noqa: E731
    return (f(xtr), f(xval), f(xte)), norm


def _load_images(spec: DataSpec, base: Path, seed: int, cache_dir: Path) -> Dataset:
    """An image folder: splits from train/ val/ test/ folders, else stratified by test_split and
    validation_split; every split shuffled (seeded) so that max_test's first rows cover every class."""
    tree = imagefolder.scan(_resolve(spec.path, base))
    size = (spec.image_size[0], spec.image_size[1]) if spec.image_size else (0, 0)  # config requires image_size
    x, _ = imagefolder.load_pixels(tree, size, spec.color, cache_dir)
    rng = np.random.default_rng(seed)
    y, split = tree.labels, tree.split
    if tree.has_split_folders:
        tr, val, te = (np.flatnonzero(split == i) for i in range(3))
        if len(te) == 0:
            keep, held = imagefolder.stratified(y[tr], spec.test_split, rng)
            tr, te = tr[keep], tr[held]
    else:
        keep, held = imagefolder.stratified(y, spec.test_split, rng)
        tr, te, val = keep, held, np.array([], np.int64)
    tr, te = rng.permutation(tr), rng.permutation(te)
    if spec.max_train and len(tr) > spec.max_train:
        tr = tr[np.sort(rng.choice(len(tr), spec.max_train, replace=False))]
    if spec.max_test and len(te) > spec.max_test:
        te = te[: spec.max_test]
    if len(val) == 0 and spec.validation_split:
        keep, held = imagefolder.stratified(y[tr], spec.validation_split, rng)
        tr, val = tr[np.sort(keep)], tr[np.sort(held)]
    val = rng.permutation(val)
    _check_rows(tr, te)
    (xtr, xval, xte), norm = _preprocess(spec, x[tr], x[val], x[te])
    return Dataset(xtr, y[tr], xval, y[val], xte, y[te], len(tree.classes), norm, tree.classes)
