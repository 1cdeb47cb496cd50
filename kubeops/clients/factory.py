"""Builds each client on first use, so a run that never touches AWS never imports boto3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubeops.settings import Settings


class Clients:
    """Lazily constructed clients for one run; `dry_run` is applied inside each client's mutation path."""

    def __init__(self, settings: Settings, *, dry_run: bool = False) -> None:
        self.settings = settings
        self.dry_run = dry_run
        self._kube: Any = None
        self._aws: Any = None
        self._ssh: Any = None

    @property
    def kube(self) -> Any:
        if self._kube is None:
            from kubeops.clients.kube import KubeClient
            from kubeops.errors import InputError, PlaybookError

            try:
                self._kube = KubeClient.from_settings(self.settings.kube, dry_run=self.dry_run)
            except InputError as exc:
                if not self.settings.kube.kubeconfig or isinstance(exc, PlaybookError):
                    raise
                path, line = self.settings.where("kube.kubeconfig")
                raise PlaybookError(exc.message, path=path, line=line, field="kube.kubeconfig", hint=exc.hint) from None
        return self._kube

    @property
    def aws(self) -> Any:
        if self._aws is None:
            from kubeops.clients.aws import AwsClient

            self._aws = AwsClient.from_settings(self.settings.aws, dry_run=self.dry_run)
        return self._aws

    @property
    def ssh(self) -> Any:
        if self._ssh is None:
            from kubeops.clients.ssh import SshClient

            self._ssh = SshClient.from_settings(self.settings.ssh, dry_run=self.dry_run)
        return self._ssh

    def close(self) -> None:
        """Release connections; safe to call when nothing was built."""
        for client in (self._kube, self._aws, self._ssh):
            closer = getattr(client, "close", None)
            if closer is not None:
                closer()
