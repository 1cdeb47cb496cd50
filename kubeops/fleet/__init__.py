"""Fleets: one playbook (or a domain task, or a deploy) across several clusters, one ordinary run per cluster.

Why a layer of its own: a run knows one cluster (its settings, checkpoint, lock). A fleet only orders runs,
starts them (canaries one after another, then N at a time) and remembers which run belongs to which cluster in a
small JSON record, so `invoke resume --fleet=ID` can continue every unfinished or unstarted cluster. Everything
about a single cluster stays the engine's business; each cluster's run is resumable on its own too.

- `record`: the fleet record, its statuses and its file store (``<state_dir>/fleets/<id>.json``);
- `runner`: `FleetRunner.start` / `.resume`, the scheduling (canary, parallel) and one thread per cluster run;
- `table`: the summary table printed at the end and by `invoke fleets --fleet=ID`.
"""

from __future__ import annotations
