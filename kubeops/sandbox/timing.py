"""How long pods take to become Ready and to exit: from annotations, or from the objects themselves, sped up.

Why: scenario pods carry explicit knobs (``sandbox.kubeops.io/readiness-delay-s``,
``sandbox.kubeops.io/termination-delay-s``); pods loaded from a snapshot of a real cluster carry probes and grace
periods instead. With ``settings.timing: spec`` (what the snapshot loader sets) a pod without the annotation takes
its timing from its spec:

- Ready after its probes could first pass: the startup probe's and the readiness probe's ``initialDelaySeconds``
  rounded up to whole ``periodSeconds`` (probes run on a period), plus ``successThreshold - 1`` periods; no probe
  means Ready when started (as the kubelet does);
- gone when its preStop hook is done and the app exits: a ``preStop`` ``sleep N`` (exec, or the ``sleep`` hook
  action) takes N seconds, any other preStop hook is assumed to use the whole ``terminationGracePeriodSeconds``,
  and an app without one exits at once on SIGTERM (most servers do; one that ignores SIGTERM cannot be told from
  its spec). ``settings.exit_s`` overrides this for every pod: a number of seconds, or ``"grace"`` for the
  pessimistic reading (every pod uses its whole grace period). The kubelet caps it at the grace period.

``settings.speed`` (default 1) divides every delay, annotations included, and controllers divide
``minReadySeconds`` by it too, so a drain with 30-minute grace periods rehearses in seconds.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Timing", "prestop_s", "probe_ready_s"]

Obj = dict[str, Any]
_READINESS = "sandbox.kubeops.io/readiness-delay-s"
_TERMINATION = "sandbox.kubeops.io/termination-delay-s"


def annotation_seconds(pod: Obj, name: str) -> float | None:
    """A pod annotation read as non-negative seconds; None when absent or not a number."""
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(name)
    if value in (None, ""):
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _probe_s(probe: Obj | None) -> float:
    if not probe:
        return 0.0
    period = max(1.0, float(probe.get("periodSeconds") or 10))
    initial = max(0.0, float(probe.get("initialDelaySeconds") or 0))
    success = max(1, int(probe.get("successThreshold") or 1))
    return math.ceil(initial / period) * period + (success - 1) * period


def probe_ready_s(pod: Obj) -> float:
    """Seconds from container start to Ready that the pod's probes imply (the slowest container wins)."""
    worst = 0.0
    for c in (pod.get("spec") or {}).get("containers") or ():
        worst = max(worst, _probe_s(c.get("startupProbe")) + _probe_s(c.get("readinessProbe")))
    return worst


def _sleep_seconds(command: Any) -> float | None:
    """N for ``["sleep", "N"]`` or ``["/bin/sh", "-c", "sleep N"]``; None for anything else."""
    words = [str(w) for w in command or ()]
    if len(words) >= 3 and words[1] == "-c":
        words = words[2].split()
    if len(words) == 2 and words[0].rsplit("/", 1)[-1] == "sleep":
        try:
            return max(0.0, float(words[1].rstrip("s")))
        except ValueError:
            return None
    return None


def prestop_s(pod: Obj, grace: float) -> float:
    """How long the slowest container's preStop hook takes: ``sleep N`` is N, any other hook the whole grace."""
    worst = 0.0
    for c in (pod.get("spec") or {}).get("containers") or ():
        hook = ((c.get("lifecycle") or {}).get("preStop")) or {}
        if not hook:
            continue
        if "sleep" in hook:
            took: float | None = float((hook.get("sleep") or {}).get("seconds") or 0)
        else:
            took = _sleep_seconds((hook.get("exec") or {}).get("command"))
        worst = max(worst, grace if took is None else took)
    return worst


class Timing:
    """Per-pod delays for the kubelet simulation; see the module docstring."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        settings = settings or {}
        self.speed = max(1e-6, float(settings.get("speed") or 1))
        self.from_spec = str(settings.get("timing") or "") == "spec"
        exit_s = settings.get("exit_s")
        self.exit_s: float | str | None = None if exit_s in (None, "") else (
            "grace" if str(exit_s) == "grace" else max(0.0, float(exit_s)))

    def readiness_s(self, pod: Obj) -> float:
        delay = annotation_seconds(pod, _READINESS)
        if delay is None:
            delay = probe_ready_s(pod) if self.from_spec else 0.0
        return delay / self.speed

    def exit_s_of(self, pod: Obj) -> float:
        """How long after SIGTERM the app exits (the kubelet caps it at the deletion grace period)."""
        delay = annotation_seconds(pod, _TERMINATION)
        if delay is None:
            if not self.from_spec:
                return 0.0
            raw = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            grace = float(30 if raw is None else raw)
            if self.exit_s == "grace":
                delay = grace
            elif self.exit_s is not None:
                delay = float(self.exit_s)
            else:
                delay = min(grace, prestop_s(pod, grace))
        return delay / self.speed

    def min_ready_s(self, spec: Obj) -> float:
        return float(spec.get("minReadySeconds") or 0) / self.speed
