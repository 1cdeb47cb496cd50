"""A rollout waits by watching, not polling: far fewer requests to the API server, and it still ends right.

Before watches, every wait read the controller every 0.2 s (plus pods and Endpoints once it looked ready): a
rollout whose new pods take 1 s to become ready made several reads a second for every second it waited.
"""

from __future__ import annotations

import itertools
import time

import pytest

from tests.apps.conftest import AppsSandbox
from tests.apps.test_deploy_e2e import app_yaml, deploy, only_version

pytestmark = pytest.mark.timeout(240)


def test_rollout_reads_little_while_it_waits_and_ends_on_the_new_version(apps_sandbox: AppsSandbox) -> None:
    sb = apps_sandbox
    sb.write_app("calm", app_yaml("calm", annotations="sandbox.kubeops.io/readiness-delay-s: '1.5'"))
    assert deploy(sb, "calm", "1").returncode == 0
    mark = sb.log_mark()
    started = time.monotonic()
    result = deploy(sb, "calm", "2")
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    only_version(sb, "calm", "2", 3)
    reads = [r for r in sb.requests(mark) if r["method"] == "GET" and r.get("verb") != "watch"
             and r.get("resource") in ("deployments", "pods", "endpoints")]
    # three surge steps of >= 1.5 s each: polling every 0.2 s read the Deployment 7 times per step (45 reads in
    # all); a watched wait lists its three collections once, then reads nothing until the step is ready
    assert took > 4.5
    assert len(reads) < 30, [f"{r['verb']} {r['path']}" for r in reads]
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(reads)]
    assert sum(1 for g in gaps if g > 1.0) >= 3, gaps  # each step waited >1 s without a single read
