"""Reading YAML with the line of every key, and validating it against a spec.

Errors name the file, the line, the key path and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from edgeq.config.yamlguard import check_graph
from edgeq.errors import ConfigError

T = TypeVar("T", bound=BaseModel)

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # pipeline, variant, device and tag names


class Spec(BaseModel):
    """Base of every config spec: unknown keys are errors, values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- YAML with lines


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping key and sequence item."""


def _key_lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict:
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[path + (key,)] = key_node.start_mark.line + 1
            _key_lines(value_node, path + (key,), out)
            # the key's own line wins over the value's first line
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _key_lines(item, path + (i,), out)
    return out


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Lines(dict):
    """{key path: line}, plus `env`: {key path: [(variable, value)]} for every ${EDGEQ_*} substituted there,
    so a validation error can name the variable instead of echoing its value (it may be a secret)."""

    env: dict


def _substitute_env(value: Any, file: str, lines: dict, path: tuple = (), hits: dict | None = None) -> Any:
    """Replace ${EDGEQ_*} in strings. Other ${...} are refused: secrets never come from YAML."""
    hits = {} if hits is None else hits
    if isinstance(value, dict):
        return {k: _substitute_env(v, file, lines, path + (k,), hits) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_env(v, file, lines, path + (i,), hits) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:

        def repl(m: re.Match) -> str:
            name = m.group(1)
            loc = where(file, lines, path)
            if not name.startswith("EDGEQ_"):
                raise ConfigError(
                    f"{loc}: ${{{name}}} is not allowed; only ${{EDGEQ_*}} variables are substituted",
                    "rename the variable to start with EDGEQ_ (e.g. ${EDGEQ_PI_HOST})",
                )
            if name not in os.environ:
                raise ConfigError(
                    f"{loc}: environment variable {name} is not set",
                    f"export {name}=... before running edgeq",
                )
            hits.setdefault(path, []).append((name, os.environ[name]))
            return os.environ[name]

        return _ENV_RE.sub(repl, value)
    return value


def _fmt_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def where(file: str, lines: dict, path: tuple) -> str:
    """'file:line: key.path' for a key path (the nearest key above it when it has no line of its own)."""
    probe = tuple(path)
    while probe not in lines and probe:
        probe = probe[:-1]
    line = lines.get(probe, 1)
    return f"{file}:{line}: {_fmt_path(path)}"


def read_yaml(path: str | Path, *, substitute_env: bool = False) -> tuple[Any, dict]:
    """Read a YAML file; return (data, {key path: line}). Raises ConfigError, never yaml errors."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: file not found", "check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}", "check the file's permissions and encoding") from None
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{p}{line}: YAML syntax error: {problem}", "fix the YAML syntax at that line") from None
    except RecursionError:
        raise ConfigError(f"{p}: YAML nesting too deep", "simplify the file") from None
    if node is not None:
        check_graph(node, p)
    lines = _Lines(_key_lines(node) if node is not None else {(): 1})
    lines.env = {}
    if substitute_env:
        data = _substitute_env(data, str(p), lines, (), lines.env)
    return data, lines


def _redact(text: str, loc: tuple, env: dict) -> str:
    """Put ${NAME} back in place of values substituted at or under loc (errors never echo them)."""
    for path, pairs in env.items():
        if path[: len(loc)] == loc or loc[: len(path)] == path:
            for name, value in sorted(pairs, key=lambda p: -len(p[1])):
                if value:
                    text = text.replace(repr(value), "${" + name + "}").replace(value, "${" + name + "}")
    return text


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The keys a spec accepts at `loc` (a path of keys and list indexes below `model`); [] if unknown."""
    import typing

    tp: Any = model
    for part in loc:
        while True:  # unwrap Optional/Union, list[...], dict[str, ...], Annotated[...]
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                break
            if not args:
                return []
            tp = args[-1] if origin is dict else args[0]
        if isinstance(part, int):
            continue
        field = next((f for n, f in tp.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return []
        tp = field.annotation
    while not (isinstance(tp, type) and issubclass(tp, BaseModel)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if not args:
            return []
        tp = args[0]
    return [f.alias or n for n, f in tp.model_fields.items()]


def _describe(err: Mapping[str, Any], model: Any = None) -> str:
    t = err.get("type", "")
    if t == "missing":
        return "required key is missing"
    if t == "extra_forbidden":
        import difflib

        loc = tuple(err.get("loc") or ())
        near = difflib.get_close_matches(str(loc[-1]), _fields_at(model, loc[:-1]), n=1, cutoff=0.6) if loc else []
        return f"unknown key (did you mean {near[0]!r}?)" if near else "unknown key"
    msg = err.get("msg", "invalid value")
    if "input" in err and t not in ("model_type", "dict_type"):
        inp = err["input"]
        if not isinstance(inp, (dict, list)):
            msg += f" (got {inp!r})"
    return msg


def validate(model: type[T], data: Any, file: str, lines: dict) -> T:
    """Validate raw YAML data against a spec; errors carry file:line and the key path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}:1: expected a mapping at the top level, got {type(data).__name__}",
            "see docs/pipeline-yaml.md (a pipeline) or docs/fleet.md#devicesyaml-reference (devices.yaml)",
        )
    try:
        return model.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors()[:10]:
            loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith(("function-", "tagged-union"))))
            text = _describe({**err, "loc": loc}, model)
            msgs.append(f"{where(file, lines, loc)}: {_redact(text, loc, getattr(lines, 'env', None) or {})}")
        more = f"\n(and {len(e.errors()) - 10} more)" if len(e.errors()) > 10 else ""
        raise ConfigError(
            "invalid configuration:\n  " + "\n  ".join(msgs) + more,
            "fix the keys above; docs/pipeline-yaml.md and docs/fleet.md#devicesyaml-reference document every key",
        ) from None


def load(model: type[T], path: str | Path, *, substitute_env: bool = False) -> T:
    data, lines = read_yaml(path, substitute_env=substitute_env)
    return validate(model, data, str(path), lines)
