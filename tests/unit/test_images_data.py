"""data.source: images without TensorFlow: layouts, splits, preprocessing, the decode cache, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeq.config import DataSpec
from edgeq.data import datasets as data
from edgeq.data import imagefolder
from edgeq.errors import DataError


def _tree(root: Path, counts: dict[str, int], split: str | None = None, size=(12, 10), fmt="png") -> None:
    rng = np.random.default_rng(0)
    for c, n in counts.items():
        d = root / split / c if split else root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            px = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(px).save(d / f"{i:03d}.{fmt}")


def _spec(root: Path, **kw) -> DataSpec:
    return DataSpec(**{"source": "images", "path": str(root), "image_size": [8, 8], **kw})


def test_class_folders_split_by_ratio_stratified_and_shuffled(tmp_path):
    _tree(tmp_path / "t", {"cat": 20, "dog": 10, "eel": 10})
    ds = data.load(_spec(tmp_path / "t", test_split=0.2, validation_split=0.25), tmp_path, 3, tmp_path / "cache")
    assert ds.class_names == ("cat", "dog", "eel") and ds.num_classes == 3
    assert np.bincount(ds.y_test).tolist() == [4, 2, 2]  # 20% of each class
    assert np.bincount(ds.y_val).tolist() == [4, 2, 2]  # 25% of each class's remaining 16, 8, 8
    assert len(ds.y_train) == 24 and ds.x_train.shape == (24, 8, 8, 3) and ds.x_train.dtype == np.float32
    assert ds.y_test.tolist() != sorted(ds.y_test.tolist())  # shuffled: max_test's first rows span the classes
    again = data.load(_spec(tmp_path / "t", test_split=0.2, validation_split=0.25), tmp_path, 3, tmp_path / "cache")
    assert np.array_equal(again.x_train, ds.x_train) and np.array_equal(again.y_test, ds.y_test)  # seeded


def test_split_folders_and_grayscale_and_preprocess(tmp_path):
    root = tmp_path / "t"
    _tree(root, {"a": 6, "b": 6}, "train")
    _tree(root, {"a": 2, "b": 3}, "val")
    _tree(root, {"a": 4, "b": 1}, "test", fmt="jpg")
    for kind, lo, hi in (("mobilenet", -1.0, 1.0), ("unit", 0.0, 1.0), ("efficientnet", 0.0, 255.0), ("scale", 0.0, 1.0)):
        ds = data.load(_spec(root, color="grayscale", preprocess=kind), tmp_path, 0, tmp_path / "cache")
        assert ds.x_train.shape == (12, 8, 8, 1) and len(ds.y_val) == 5 and len(ds.y_test) == 5
        assert lo <= ds.x_train.min() < ds.x_train.max() <= hi, kind
    assert ds.norm["kind"] == "scale"
    ds = data.load(_spec(root, preprocess="mobilenet"), tmp_path, 0, tmp_path / "cache")
    assert ds.x_train.shape == (12, 8, 8, 3) and ds.norm == {"kind": "mobilenet", "multiply": 1 / 127.5, "add": -1.0}


def test_max_train_and_max_test(tmp_path):
    _tree(tmp_path / "t", {"a": 30, "b": 30})
    ds = data.load(_spec(tmp_path / "t", max_train=20, max_test=10, validation_split=0.1), tmp_path, 0, tmp_path / "c")
    assert len(ds.y_train) + len(ds.y_val) == 20 and len(ds.y_test) == 10 and set(ds.y_test.tolist()) == {0, 1}


def test_decode_cache_hit_then_miss_when_a_file_changes(tmp_path):
    root = tmp_path / "t"
    _tree(root, {"a": 3, "b": 3})
    cache = tmp_path / "cache"
    tree = imagefolder.scan(root)
    x1, hit1 = imagefolder.load_pixels(tree, (8, 8), "rgb", cache)
    x2, hit2 = imagefolder.load_pixels(imagefolder.scan(root), (8, 8), "rgb", cache)
    assert (hit1, hit2) == (False, True) and np.array_equal(x1, x2)
    fp = data.fingerprint(_spec(root), tmp_path)
    f = root / "a" / "000.png"
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(f)
    os.utime(f, ns=(1, 1))  # a new mtime whatever the clock's resolution
    tree3 = imagefolder.scan(root)
    x3, hit3 = imagefolder.load_pixels(tree3, (8, 8), "rgb", cache)
    assert not hit3 and x3[tree3.files.index("a/000.png")].max() == 0
    assert data.fingerprint(_spec(root), tmp_path) != fp
    # a damaged cache entry is a miss, decoded again
    (cache / imagefolder.cache_key(tree3, (8, 8), "rgb") / "x.npy").write_bytes(b"junk")
    x4, hit4 = imagefolder.load_pixels(imagefolder.scan(root), (8, 8), "rgb", cache)
    assert not hit4 and np.array_equal(x3, x4)


def test_corrupt_image_is_named(tmp_path):
    root = tmp_path / "t"
    _tree(root, {"a": 3, "b": 3})
    bad = root / "b" / "001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    with pytest.raises(DataError, match=r"b/001\.png: cannot decode image"):
        data.load(_spec(root), tmp_path, 0, tmp_path / "cache")
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"b/001\.png: cannot decode image"):
        data.load(_spec(root), tmp_path, 0, None)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: None, "image folder not found"),
        (lambda r: _tree(r, {"only": 2}), "need at least 2"),
        (lambda r: (_tree(r, {"a": 2}), (r / "b").mkdir()), "b: no images"),
        (
            lambda r: (_tree(r, {"a": 2, "b": 2}, "train"), _tree(r, {"c": 1}, "test")),
            "class 'c' is not among the train/ classes",
        ),
    ],
)
def test_bad_trees(tmp_path, setup, message):
    root = tmp_path / "t"
    setup(root)
    with pytest.raises(DataError, match=message):
        data.fingerprint(_spec(root), tmp_path)


def test_config_rules():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="image_size"):
        DataSpec(source="images", path="x")
    with pytest.raises(ValidationError, match="applies to source 'images' only"):
        DataSpec(source="idx", path="x", image_size=[8, 8])
    with pytest.raises(ValidationError, match=r"\[height, width\]"):
        DataSpec(source="images", path="x", image_size=[8])


def test_a_killed_runs_temp_folder_is_swept_when_old(tmp_path):
    root = tmp_path / "t"
    _tree(root, {"a": 2, "b": 2})
    cache = tmp_path / "cache"
    old, fresh = cache / ".k1.123.abcdef", cache / ".k2.124.abcdef"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "x.npy").write_bytes(b"partial")
    os.utime(old, (1, 1))
    imagefolder.load_pixels(imagefolder.scan(root), (8, 8), "rgb", cache)
    assert not old.exists() and fresh.exists()  # fresh: maybe another run's decode in progress


def test_worker_processes_decode_the_same_pixels_and_name_a_bad_file(tmp_path, monkeypatch):
    root = tmp_path / "t"
    _tree(root, {"a": 5, "b": 4}, size=(6, 7))
    monkeypatch.setattr(imagefolder, "_CHUNK", 2)
    monkeypatch.setattr(imagefolder, "_PARALLEL_FROM", 1)
    tree = imagefolder.scan(root)
    assert np.array_equal(
        imagefolder.decode(tree, (8, 8), "grayscale", workers=2), imagefolder.decode(tree, (8, 8), "grayscale", 1)
    )
    (root / "b" / "002.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"b/002\.png: cannot decode image") as e:
        imagefolder.decode(imagefolder.scan(root), (8, 8), "rgb", workers=2)
    assert e.value.hint and "replace or remove" in e.value.hint
