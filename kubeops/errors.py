"""One exception tree for kubeops, with messages written for the person reading them at 3 a.m.

Library exceptions (kubernetes, botocore, paramiko) never leave `kubeops.clients`: they are re-raised as the
classes below `from exc`, so the engine and the tasks can decide what happens next from the type alone.
`str(error)` must never contain a secret (token, key, password, AWS credential).

Exit codes are decided in exactly one place, `kubeops.tasks`, from these types.
"""

from __future__ import annotations


class KubeopsError(Exception):
    """Root of every error kubeops raises on purpose; `hint` says what to do next."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InputError(KubeopsError):
    """Bad input from the user (flags, inventory, parameters): nothing was changed. Exit code 2."""


class PlaybookError(InputError):
    """A playbook, inventory or app config file is invalid; names the file, line and field."""

    def __init__(
        self,
        message: str,
        *,
        path: str,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        where = path if line is None else f"{path}:{line}"
        prefix = f"{where}: {field}: " if field else f"{where}: "
        super().__init__(prefix + message, hint=hint)
        self.detail = message


class RegistryError(KubeopsError):
    """An action was declared twice or badly: a programming error caught at import time."""


class StepFailed(KubeopsError):
    """A step of a run failed; the run is checkpointed and resumable. Exit code 1."""

    def __init__(self, message: str, *, step: str, run_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.run_id = run_id


class ActionError(KubeopsError):
    """An action could not do its job for a reason that retrying will not fix."""


class TransientError(KubeopsError):
    """Worth retrying after `delay_s` seconds (throttling, 5xx, dropped connection)."""

    def __init__(self, message: str, *, delay_s: float = 1.0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.delay_s = delay_s


class ClusterError(KubeopsError):
    """The Kubernetes API refused or failed a call; `status` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class NotFound(ClusterError):
    """The object does not exist (404)."""


class Conflict(ClusterError):
    """Stale resourceVersion or object already exists (409)."""


class Forbidden(ClusterError, InputError):
    """Bad credentials or missing permissions (401/403).

    Also an InputError: retrying will not help, and when it happens before any change the run is rejected and
    exits 2 like other bad configuration. After a change it fails the step like any other error (exit 1).
    """


class TooManyRequests(ClusterError):
    """429: throttled, or an eviction blocked by a PodDisruptionBudget."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: object) -> None:
        super().__init__(message, status=429, **kwargs)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class Unavailable(ClusterError):
    """The API server could not be reached or answered 5xx after retries."""


class AwsError(KubeopsError):
    """An AWS call failed; `code` is the AWS error code when there was one."""

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code


class AwsInputError(AwsError, InputError):
    """An AWS name or limit in the input is unusable (unknown group, group at max).

    Detected before any change, so it exits 2 like other input errors.
    """


class SshError(KubeopsError):
    """A remote command could not run or exited non-zero."""


class LockHeld(KubeopsError):
    """Another run holds the cluster's lock. Exit code 3."""


class OutsideWindow(KubeopsError):
    """The run may not start or continue outside its maintenance window. Exit code 0 (documented)."""
