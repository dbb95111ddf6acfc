"""Guards on a composed YAML node graph, run before anything walks the data (edgeq.config.read_yaml)."""

from __future__ import annotations

from pathlib import Path

import yaml

from edgeq.errors import ConfigError

_MAX_NODES = 100_000  # real pipeline and fleet files have hundreds; aliases can expand exponentially


def check_graph(root: yaml.Node, p: Path) -> None:
    """Refuse alias cycles (`&a [*a]`) and alias bombs ("billion laughs") before anything walks the data:
    both would otherwise recurse forever or expand to billions of nodes. Iterative, sizes memoized per node."""
    sizes: dict[int, int] = {}
    gray: set[int] = set()  # nodes whose subtree is being walked: the current path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]

    def children(n: yaml.Node) -> list:
        if isinstance(n, yaml.MappingNode):
            return [x for kv in n.value for x in kv]
        return list(n.value) if isinstance(n, yaml.SequenceNode) else []

    while stack:
        node, done = stack.pop()
        if done:
            gray.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children(node))
            if sizes[id(node)] > _MAX_NODES:
                raise ConfigError(
                    f"{p}:{node.start_mark.line + 1}: the document expands to more than {_MAX_NODES} values "
                    "(YAML aliases repeated inside aliases?)",
                    "write the values out instead of nesting aliases",
                )
            continue
        if id(node) in sizes:
            continue
        gray.add(id(node))
        stack.append((node, True))
        for c in children(node):
            if id(c) in gray:
                raise ConfigError(
                    f"{p}:{c.start_mark.line + 1}: a YAML alias refers to a value that contains it (a cycle)",
                    "remove the alias (*name) inside its own anchor (&name)",
                )
            if id(c) not in sizes:
                stack.append((c, False))
