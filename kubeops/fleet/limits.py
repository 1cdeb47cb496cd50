"""``--max-failures``: a count or a share of the fleet's clusters, turned into the count that stops new starts."""

from __future__ import annotations

from kubeops.errors import InputError

MaxFailures = int | str | None  # a count (at least 1), "P%" (0 to 100), or None: no limit


def failure_limit(max_failures: MaxFailures, clusters: int) -> int | None:
    """How many counted failures stop further starts, for a fleet of `clusters`; InputError on a bad value.

    "P%" follows Ansible's ``max_fail_percentage``: the fleet stops once more than P% of its clusters failed, so
    the limit is the first count above that share (10 clusters: "30%" stops at the 4th failure, "0%" at the
    first, "100%" never)."""
    if max_failures is None:
        return None
    if isinstance(max_failures, int) and not isinstance(max_failures, bool):
        if max_failures < 1:
            raise InputError(f"--max-failures must be at least 1, got {max_failures}")
        return max_failures
    text = str(max_failures).strip()
    number = text[:-1].strip() if text.endswith("%") else ""
    if not number.isdigit() or not 0 <= int(number) <= 100:
        raise InputError(f"--max-failures must be a whole number of at least 1 or a percentage from 0% to 100%, "
                         f"got {max_failures!r}")
    return int(number) * clusters // 100 + 1
