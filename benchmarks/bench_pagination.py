"""What a snapshot costs: paging through every pod (limit 500) while pods change between pages, side by side with
the same list on a quiet cluster. Later pages undo the changes logged since the first page (kubeops.sandbox.store
`Store._as_of`), so their cost grows with the churn, not with the cluster. In-process store, no HTTP.

    python benchmarks/bench_pagination.py [--pods 60000] [--churn 0,100,1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from table import print_table  # noqa: E402 (benchmarks/table.py, beside this script)

from kubeops.sandbox.cluster import build_cluster  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=60_000)
    ap.add_argument("--churn", default="0,100,1000", help="pod changes between two pages (comma list)")
    args = ap.parse_args()
    cluster = build_cluster(scenario=None, plugins=())
    store = cluster.store
    store.create("namespaces", {"metadata": {"name": "default"}})
    store.load("pods", [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i:06d}", "namespace": "default",
                                                                       "labels": {"app": "x"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": f"n-{i % 100}"}}
                        for i in range(args.pods)])
    rows = []
    for churn in (int(c) for c in args.churn.split(",")):
        began = time.perf_counter()
        page = store.list("pods", limit=500, copy=False)
        pages, seen, changed = 1, len(page.items), 0
        while page.continue_token:
            for _ in range(churn // 10):  # spread the churn over the pages
                name = f"p-{changed % args.pods:06d}"
                store.patch("pods", "default", name, {"metadata": {"labels": {"v": str(changed)}}},
                            "application/merge-patch+json")
                changed += 1
            page = store.list("pods", limit=500, continue_token=page.continue_token, copy=False)
            pages += 1
            seen += len(page.items)
        elapsed = time.perf_counter() - began
        assert seen == args.pods, (seen, args.pods)
        rows.append((str(churn // 10), str(changed), str(pages), f"{elapsed * 1000:.0f}",
                     f"{elapsed / pages * 1000:.2f}"))
    header = ("changes/page", "changes total", "pages", "total ms", "ms/page")
    print_table(f"paginated list of {args.pods} pods (limit 500), every page consistent with the first", header, rows)


if __name__ == "__main__":
    main()
