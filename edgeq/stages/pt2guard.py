"""What edgeq checks in a .pt2 (model.torch: x.pt2) before torch.export.load reads it, and how it loads it.

torch.export.load has no weights-only mode (torch 2.14: `load(f, *, extra_files, expected_opset_version)`; its
docstring: "uses pickle under the hood ... Never load data from an untrusted source"). A .pt2 is a zip: the program
as JSON, the tensors as raw bytes or as pickles. Checked on torch 2.14.1 with crafted files, loading one runs code
of the file's author three ways:
- tensors, constants and example inputs stored as pickles go through torch.load(weights_only=False), or through a
  weights-only try that falls back to it. TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 makes every torch.load weights-only, an
  explicit weights_only=False included (torch's docs say so; torch 2.14 does): weights_only_loads() sets it.
- constants that are Python objects (constants/opaque_obj_*) go through pickle.loads, TorchScript objects
  (constants/custom_obj_*) through TorchScript's unpickler; no setting reaches those: refused here.
- symbolic shape expressions (JSON `expr_str`) go through sympy.sympify, which evaluates its text as Python:
  refused here unless the text names only shape symbols, sympy's numbers and arithmetic, and torch's shape
  functions (SHAPE_NAMES), and quotes only names and numbers.
What edgeq asks for (torch.export.export(model.eval(), (sample,)): static shapes, tensors only) has none of the
refused parts. This narrows what a hostile file can do; it is no sandbox: docs/pipeline-yaml.md#a-pipeline-yaml-is-code.
Pure Python (zipfile, json): importing this module imports no torch.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeq.errors import ModelError

FORCE_WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
_FORCE_PICKLE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"  # torch refuses to load when both are set

# torch picks the unpickler by these prefixes of a constant's file name (torch/export/pt2_archive/constants.py)
OBJECT_PREFIXES = ("opaque_obj_", "custom_obj_")
_EXPR_CHARS = re.compile(r"[\w\s+\-*/%().,<>=!&|~]*")
_QUOTED = re.compile(r"'([^']*)'")
_QUOTED_OK = re.compile(r"[\w.+\-]*")  # a symbol's name or a Float's digits: Symbol('s27', ...), Float('0.5', ...)
_NAME = re.compile(r"[A-Za-z_]\w*")
# the shape symbols torch writes (s0, u3, zuf0, ps1, ...); a number's exponent (1e5) reads as one too, harmlessly
_SYMBOL = re.compile(r"[A-Za-z]{1,8}\d+")
# The names a shape expression may hold, in either form torch has written (str(), and srepr() since 2.x:
# "Add(Mul(Integer(2), Symbol('s65', positive=True, integer=True)), Integer(1))"): torch.utils._sympy.functions (the
# deserializer's own table in torch/_export/serde/serialize.py), the sympy classes and constants srepr/str name,
# and the assumptions a Symbol carries. None of them reads a string as code.
SHAPE_NAMES = frozenset(
    {
        # torch.utils._sympy.functions
        "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv",
        "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity", "OpaqueUnaryFn_sqrt",
        "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or", "BitwiseFn_bitwise_xor",
        # sympy classes and constants
        "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Abs", "floor", "ceiling",
        "Piecewise", "ExprCondPair", "Tuple", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality",
        "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "And", "Or", "Not",
        "True", "False", "true", "false", "oo", "zoo", "nan", "precision",
        # a Symbol's assumptions
        "positive", "negative", "nonnegative", "nonpositive", "nonzero", "zero", "integer", "real", "finite",
        "infinite", "rational", "irrational", "even", "odd", "commutative", "extended_real", "extended_positive",
        "extended_negative", "extended_nonnegative", "extended_nonpositive", "extended_nonzero",
    }
)  # fmt: skip
_TOO_LONG = 10_000  # characters of one expression: real ones are a few dozen


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every torch.load in this process weights-only while the block runs (torch reads the variable per call)."""
    saved = {k: os.environ.get(k) for k in (FORCE_WEIGHTS_ONLY, _FORCE_PICKLE)}
    os.environ[FORCE_WEIGHTS_ONLY] = "1"
    os.environ.pop(_FORCE_PICKLE, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def unsafe_expression(expr: str) -> str | None:
    """Why sympify must not see this shape expression, or None when it is arithmetic over shape symbols."""
    if len(expr) > _TOO_LONG:
        return f"a shape expression of {len(expr)} characters"
    for quoted in _QUOTED.findall(expr):
        if not _QUOTED_OK.fullmatch(quoted):
            return f"a shape expression quoting {quoted[:60]!r}"
    bare = _QUOTED.sub("0", expr)  # what is left is read as Python by sympify
    if not _EXPR_CHARS.fullmatch(bare):
        bad = sorted({c for c in bare if not _EXPR_CHARS.fullmatch(c)})
        return f"a shape expression with {''.join(bad)!r} in it"
    for name in _NAME.findall(bare):
        if name not in SHAPE_NAMES and not _SYMBOL.fullmatch(name):
            return f"a shape expression naming {name!r}"
    return None


def _strings(doc: object, key: str) -> Iterator[str]:
    """Every string value of `key`, at any depth of a JSON document."""
    stack = [doc]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                if k == key and isinstance(v, str):
                    yield v
                else:
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(x)


def _unsafe_json(doc: object) -> str | None:
    # a payload config names each constant's file; its prefix, not the member's name, picks the unpickler
    objects = [n for n in _strings(doc, "path_name") if any(pre in n for pre in OBJECT_PREFIXES)]
    if objects:
        return f"a pickled Python object ({objects[0]})"
    return next(filter(None, map(unsafe_expression, _strings(doc, "expr_str"))), None)


def check_pt2(path: Path) -> None:
    """Refuse a .pt2 whose loading would unpickle Python objects or evaluate text as Python (see the module's
    docstring). A file that is no zip is left to torch.export.load, which says so."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return
    with zf:
        for info in zf.infolist():
            why = None
            if any(pre in info.filename for pre in OBJECT_PREFIXES):
                why = f"a pickled Python object ({info.filename})"
            elif info.filename.endswith(".json"):
                try:
                    doc = json.loads(zf.read(info))
                except (ValueError, zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError):
                    continue  # unreadable here (bad CRC, encrypted, unknown compression): torch reports it better
                why = _unsafe_json(doc)
                why = why and f"{why} in {info.filename}"
            if why:
                raise ModelError(
                    f"model.torch {path}: edgeq does not load this .pt2: it holds {why}, which torch.export.load "
                    "would unpickle or evaluate as Python",
                    "export a module you trust with static shapes and tensors only: torch.export.save("
                    "torch.export.export(model.eval(), (sample,)), 'model.pt2'); or give model.torch: module:function",
                )
