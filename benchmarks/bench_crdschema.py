"""What a CRD schema costs a write: creating custom resources under a schema that checks nothing
(``x-kubernetes-preserve-unknown-fields``), side by side with a full schema (types, bounds, enum, pattern, defaults,
a map-type list) pruning one unknown field per item. In-process store, as an API create (Warn directive), no HTTP.

    python benchmarks/bench_crdschema.py [--objects 2000] [--items 1,20,200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from table import print_table  # noqa: E402 (benchmarks/table.py, beside this script)

from kubeops.sandbox import fieldvalidation  # noqa: E402
from kubeops.sandbox.cluster import build_cluster  # noqa: E402

FULL: dict[str, Any] = {"type": "object", "properties": {"spec": {
    "type": "object", "required": ["replicas"], "properties": {
    "replicas": {"type": "integer", "minimum": 0, "maximum": 1000},
    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
    "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
              "items": {"type": "object", "required": ["name"], "properties": {
                  "name": {"type": "string", "pattern": "^[a-z0-9-]+$", "maxLength": 63},
                  "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                  "weight": {"type": "integer", "default": 1}}}}}}}}
OPEN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def crd(plural: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.bench.example.com"},
            "spec": {"group": "bench.example.com", "scope": "Namespaced",
                     "names": {"plural": plural, "singular": plural[:-1], "kind": plural.capitalize()[:-1]},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema}}]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--items", default="1,20,200", help="list items per object (comma list)")
    args = ap.parse_args()
    rows = []
    for n_items in (int(n) for n in args.items.split(",")):
        timings = {}
        for label, schema in (("open", OPEN), ("full", FULL)):
            cluster = build_cluster(scenario=None, plugins=("crds",))
            store = cluster.store
            store.create("namespaces", {"metadata": {"name": "default"}})
            plural = f"{label}things"
            store.create("customresourcedefinitions.apiextensions.k8s.io", crd(plural, schema))
            key = f"{plural}.bench.example.com"
            kind = plural.capitalize()[:-1]
            began = time.perf_counter()
            with fieldvalidation.writing("POST", {}, version="v1", subresource=None):
                for i in range(args.objects):
                    store.create(key, {"apiVersion": "bench.example.com/v1", "kind": kind,
                                       "metadata": {"name": f"o-{i}", "namespace": "default"},
                                       "spec": {"replicas": 3, "items": [{"name": f"i-{j}", "port": 80, "x": 1}
                                                                         for j in range(n_items)]}})
            timings[label] = (time.perf_counter() - began) / args.objects * 1e6
        rows.append((str(n_items), f"{timings['open']:.0f}", f"{timings['full']:.0f}",
                     f"{timings['full'] / timings['open']:.1f}x"))
    header = ("items/object", "open schema us/create", "full schema us/create", "ratio")
    print_table(f"{args.objects} custom resources created per column (store only, no HTTP)", header, rows)


if __name__ == "__main__":
    main()
