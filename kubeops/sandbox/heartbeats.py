"""Which nodes' kubelets are down, per store: written by the node-dies fault (`kubeops.sandbox.nodefailure`),
read by whatever a dead kubelet would have done (the kubelet simulation, its Events).

A module of its own so the readers need not import the node lifecycle controllers (no import circle)."""

from __future__ import annotations

import weakref

from kubeops.sandbox.store import Store

_DEAD: weakref.WeakKeyDictionary[Store, dict[str, float]] = weakref.WeakKeyDictionary()


def dead_nodes(store: Store) -> dict[str, float]:
    """The store's dead nodes -> sandbox time of their last heartbeat (the live dict: writers change it)."""
    nodes = _DEAD.get(store)
    if nodes is None:
        nodes = _DEAD[store] = {}
    return nodes


def is_dead(store: Store, node: str) -> bool:
    nodes = _DEAD.get(store)
    return bool(nodes) and node in nodes
