"""Minimal pytree helpers for torch env states: nested NamedTuples, tuples, lists and dicts of tensors.

Our own rather than torch.utils._pytree (a private module): the torch contract needs only a per-leaf
map over matching trees and a flat {"path.to.leaf": tensor} view for checkpoints. Paths join NamedTuple
field names and dict keys with "." (e.g. "raw.data.qpos"), as keystr(..., simple=True) does in JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch


def _children(tree: Any) -> Iterator[tuple[str, Any]]:
    if hasattr(tree, "_fields"):  # NamedTuple
        return zip(tree._fields, tree)
    if isinstance(tree, (tuple, list)):
        return ((str(i), x) for i, x in enumerate(tree))
    if isinstance(tree, dict):
        return ((str(k), v) for k, v in tree.items())
    raise TypeError(f"not a tensor tree node: {type(tree).__name__}")


def _rebuild(tree: Any, children: list[Any]) -> Any:
    if hasattr(tree, "_fields"):
        return type(tree)(*children)
    if isinstance(tree, (tuple, list)):
        return type(tree)(children)
    return dict(zip(tree.keys(), children))


def tree_map_with_path(fn: Callable[..., torch.Tensor], tree: Any, *rest: Any, path: str = "") -> Any:
    """fn(path, leaf, *matching_leaves_of_rest) at every tensor leaf; the trees must share structure.

    None is an empty subtree (kept as None), like in JAX.
    """
    if tree is None:
        return None
    if isinstance(tree, torch.Tensor):
        return fn(path, tree, *rest)
    rest_children = [dict(_children(r)) for r in rest]
    mapped = [tree_map_with_path(fn, child, *(rc[name] for rc in rest_children),
                                 path=f"{path}.{name}" if path else name)
              for name, child in _children(tree)]
    return _rebuild(tree, mapped)


def tree_map(fn: Callable[..., torch.Tensor], tree: Any, *rest: Any) -> Any:
    """fn(leaf, *matching_leaves_of_rest) at every tensor leaf."""
    return tree_map_with_path(lambda _, *leaves: fn(*leaves), tree, *rest)


def tree_items(tree: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flat {"prefix.path": leaf} view of a tensor tree, in traversal order."""
    items: dict[str, torch.Tensor] = {}

    def collect(path: str, leaf: torch.Tensor) -> torch.Tensor:
        items[f"{prefix}.{path}" if prefix else path] = leaf
        return leaf

    tree_map_with_path(collect, tree)
    return items
