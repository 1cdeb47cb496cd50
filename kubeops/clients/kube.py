"""The one seam between kubeops and the Kubernetes API (official `kubernetes` client).

Why a wrapper: the official client raises `ApiException` with raw bodies and retries nothing the way an operator
needs. Every call goes through `KubeClient.call`, which
- retries 429 and 5xx answers and dropped connections with backoff, honouring Retry-After, a bounded number of times;
- turns failures into kubeops errors (`NotFound`, `Conflict`, `TooManyRequests`, `Forbidden`, `Unavailable`)
  carrying the server's own Status message and never a header or token;
- is the single place where dry-run is applied: mutating helpers pass ``dry_run="All"`` when the client is in
  dry-run mode, so the API server validates and evaluates (budgets included) without changing anything.

Helpers for a domain live in sibling modules (e.g. node/pod helpers) built on `call`; keep this file the core.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from kubeops.errors import ClusterError, Conflict, Forbidden, InputError, NotFound, TooManyRequests, Unavailable

if TYPE_CHECKING:
    from kubeops.settings import KubeSettings

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def status_message(exc: Any) -> tuple[str, str | None, dict[str, Any]]:
    """(message, reason, details) from an ApiException's Status body, without headers."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        if isinstance(data, dict):
            return str(data.get("message") or exc.reason), data.get("reason"), data.get("details") or {}
    return str(getattr(exc, "reason", None) or "request failed"), None, {}


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def map_api_exception(exc: Any, *, what: str) -> ClusterError:
    """An ApiException as a kubeops error whose message is the server's, prefixed with what we were doing."""
    status = getattr(exc, "status", None)
    message, reason, details = status_message(exc)
    text = f"{what}: {message}"
    error: ClusterError
    if status == 404:
        error = NotFound(text, status=404, reason=reason)
    elif status == 409:
        error = Conflict(text, status=409, reason=reason)
    elif status in (401, 403):
        error = Forbidden(
            text, status=status, reason=reason, hint="check the credentials and RBAC of the kubeconfig user"
        )
    elif status == 429:
        error = TooManyRequests(text, retry_after_s=_retry_after(exc), reason=reason)
    elif status is not None and status >= 500:
        error = Unavailable(text, status=status, reason=reason)
    else:
        error = ClusterError(text, status=status, reason=reason)
    error.details = details  # type: ignore[attr-defined]  # Status details: the drain reads eviction causes
    error.server_message = message  # type: ignore[attr-defined]
    return error


class KubeClient:
    """A configured Kubernetes API client with retries, error mapping and dry-run at one choke point."""

    def __init__(
        self,
        api_client: Any,
        *,
        dry_run: bool = False,
        max_retries: int = 5,
        request_timeout_s: float = 30.0,
        concurrency: int = 10,
        scrape_concurrency: int = 16,
        freeze_big_lists: bool = True,
        stats_source: str = "cadvisor",
    ) -> None:
        self.api_client = api_client
        self.dry_run = dry_run
        self.max_retries = max_retries
        self.request_timeout_s = request_timeout_s
        self.concurrency = concurrency
        self.scrape_concurrency = scrape_concurrency
        self.stats_source = stats_source
        self.freeze_big_lists = freeze_big_lists
        self.eviction_version = "v1"  # "v1beta1" once a server answered 404 to policy/v1 evictions
        # how many times faster than real time the cluster lives: waits between retries of a refusal (a budget's
        # backoff) are divided by it. 1 on a real cluster; a rehearsal at --speed=N sets N on its private sandbox
        self.pace = 1.0
        self._apis: dict[str, Any] = {}

    @classmethod
    def from_settings(cls, settings: KubeSettings, *, dry_run: bool = False) -> KubeClient:
        """Load kubeconfig (file + context) or in-cluster config; a missing file is an input error."""
        import os

        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        configuration = client.Configuration()
        try:
            if settings.in_cluster:
                config.load_incluster_config(client_configuration=configuration)
            else:
                path = settings.kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
                if not os.path.exists(path):
                    raise InputError(
                        f"kubeconfig {path} does not exist",
                        hint="start the sandbox (`invoke sandbox --detach`) or set kube.kubeconfig in the inventory",
                    )
                config.load_kube_config(
                    config_file=path, context=settings.context, client_configuration=configuration
                )
        except ConfigException as exc:
            raise InputError(f"cannot load Kubernetes configuration: {exc}") from None
        configuration.retries = False  # we retry ourselves, honouring Retry-After
        # evictions run `qps_concurrency` at a time, scrapes `scrape_concurrency`, plus watches: each its own connection
        configuration.connection_pool_maxsize = max(settings.qps_concurrency, settings.scrape_concurrency, 6) + 4
        api_client = client.ApiClient(configuration)
        api_client.user_agent = "kubeops/0.1"
        return cls(
            api_client,
            dry_run=dry_run,
            max_retries=settings.max_retries,
            request_timeout_s=settings.request_timeout_s,
            concurrency=settings.qps_concurrency,
            scrape_concurrency=settings.scrape_concurrency,
            freeze_big_lists=settings.freeze_big_lists,
            stats_source=settings.stats_source,
        )

    def close(self) -> None:
        """Close the client's connections now. Why by hand: `ApiClient.close` only stops its thread pool and leaves
        the sockets to the garbage collector, which a long-lived process (the console) would pile up."""
        # closing a pool that never opened is not worth failing a run over
        with contextlib.suppress(Exception):
            self.api_client.close()
        with contextlib.suppress(Exception):
            self.api_client.rest_client.pool_manager.clear()

    # --- typed API groups, built once -------------------------------------------------------------------------
    def _api(self, name: str) -> Any:
        api = self._apis.get(name)
        if api is None:
            from kubernetes import client

            api = getattr(client, name)(self.api_client)
            self._apis[name] = api
        return api

    @property
    def core(self) -> Any:
        return self._api("CoreV1Api")

    @property
    def apps(self) -> Any:
        return self._api("AppsV1Api")

    @property
    def policy(self) -> Any:
        return self._api("PolicyV1Api")

    @property
    def coordination(self) -> Any:
        return self._api("CoordinationV1Api")

    @property
    def custom(self) -> Any:
        return self._api("CustomObjectsApi")

    @property
    def batch(self) -> Any:
        return self._api("BatchV1Api")

    @property
    def dry_run_arg(self) -> dict[str, str]:
        """Keyword arguments every mutating call adds: ``{"dry_run": "All"}`` in dry-run mode, else nothing."""
        return {"dry_run": "All"} if self.dry_run else {}

    # --- the choke point ----------------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, what: str, retry: bool = True, retry_429: bool = True,
             **kwargs: Any) -> T:
        """Call an API method, retrying transient failures; `what` names the operation in errors.

        Evictions pass ``retry_429=False``: their 429 means a PodDisruptionBudget said no, which the drain handles
        with its own backoff; their 5xx and dropped connections are retried like any call (a single 503 used to
        fail a whole drain, found by the soak).
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except ApiException as exc:
                error = map_api_exception(exc, what=what)
                throttled_by_caller = exc.status == 429 and not retry_429
                if not retry or throttled_by_caller or exc.status not in RETRYABLE_STATUS or attempt > self.max_retries:
                    raise error from None
                delay = _retry_after(exc)
            except (Urllib3Error, ConnectionError, OSError) as exc:
                if not retry or attempt > self.max_retries:
                    raise Unavailable(
                        f"{what}: cannot reach the Kubernetes API ({type(exc).__name__})",
                        hint="is the API server (or the sandbox) running and the kubeconfig right?",
                    ) from None
                delay = None
            backoff = min(8.0, 0.2 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            time.sleep(delay if delay is not None else backoff)

    # --- raw JSON requests ----------------------------------------------------------------------------------------
    # Domain helpers (nodes.py, pods.py) use these rather than the generated models: plain dicts are what the pure
    # drain and capacity logic read, deserialising thousands of pods into models is slow, and some paths (policy
    # v1beta1 evictions) have no generated method any more.
    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        timeout: Any,
        stream: bool = False,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        response = open_raw(self.api_client, method, path, query=query, headers=headers, body=body, timeout=timeout)
        if stream:
            return response
        data = response.data
        if not data:
            return {}
        if len(data) < _BIG_BODY:
            return _loads(data)
        with gc_paused(freeze=self.freeze_big_lists):
            return _loads(data)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        retry: bool = True,
        retry_429: bool = True,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """One API call as plain JSON, through `call` (retries, error mapping).

        Mutating methods get ``dryRun=All`` here when the client is in dry-run mode, so no caller can forget it.
        """
        query = dict(query or {})
        if method != "GET" and self.dry_run:
            query["dryRun"] = "All"
        timeout = timeout_s or self.request_timeout_s
        return self.call(self._send, method, path, query, body, content_type, timeout, what=what, retry=retry,
                         retry_429=retry_429)

    def watch(
        self,
        path: str,
        *,
        what: str,
        query: dict[str, Any] | None = None,
        timeout_s: float,
    ) -> WatchStream:
        """Open a watch on a collection; iterate it for events ({"type", "object"}), `close()` it to stop early.

        The server ends the stream after `timeout_s`; the caller re-watches from the last resourceVersion it saw.
        An ERROR event (410 Gone: that version is too old) is yielded as is, so the caller can re-list.
        """
        query = {**(query or {}), "watch": "true", "allowWatchBookmarks": "true"}
        query["timeoutSeconds"] = max(1, int(timeout_s))
        response = self.call(
            self._send, "GET", path, query, None, None, (5.0, timeout_s + 5.0), True, what=what
        )
        return WatchStream(response)


_BIG_BODY = 1 << 20  # bodies from here on are list pages worth keeping out of the cycle collector's way


@contextlib.contextmanager
def gc_paused(*, freeze: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector while a big list is decoded and gathered, then freeze what it built.

    Why: 60,000 pods are millions of new objects. Collected as they are built, the collector walks every page
    already kept, again and again (twice the decoding's CPU); merely paused, the first collections afterwards
    walk all of them at once, three times over, in whatever code runs next. `gc.freeze()` moves what exists to
    the permanent generation, which collections skip. Decoded JSON holds no reference cycles, and refcounting
    still frees it the moment it is dropped, so only a cycle among objects alive at this instant could outlive
    its use; so only short-lived runs do it (`KubeSettings.freeze_big_lists`; the console turns it off).
    """
    if not freeze:  # a long-lived process (the console): leave the collector alone
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def _json_decoder() -> Callable[[bytes], Any]:
    """orjson's loads when installed (it decodes a 60,000-pod list about 3x faster: most of a capacity check's
    CPU on a big cluster), else the standard library's; both give the same plain dicts."""
    try:
        import orjson
    except ImportError:
        return json.loads
    return orjson.loads


_loads = _json_decoder()


class WatchStream:
    """An open watch: iterable once; `close()` (from any thread) ends it and frees the connection."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            yield from _json_lines(self._response)
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            shutdown = getattr(self._response, "shutdown", None)  # urllib3 >= 2.3 unblocks a reader
            if shutdown is not None:
                shutdown()
        with contextlib.suppress(Exception):
            self._response.release_conn()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_lines(response: Any) -> Iterator[dict[str, Any]]:
    """Decode a watch stream (one JSON object per line) as it arrives."""
    from urllib3.exceptions import HTTPError as Urllib3Error

    buffer = b""
    try:
        for chunk in response.stream(64 * 1024, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
    except (Urllib3Error, OSError, ValueError, AttributeError):
        return  # a dropped or timed-out stream just ends the watch; the caller re-watches from its last version
    if buffer.strip():
        yield json.loads(buffer)


def open_raw(
    api_client: Any,
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: Any = None,
) -> Any:
    """Send one request with the client's auth and TLS settings; return the unread urllib3 response.

    Non-2xx answers raise `ApiException` (which `KubeClient.call` maps). Works with both generations of the
    generated client: the openapi-generator v7 one (`param_serialize`, kubernetes >= 37) and the older one.
    """
    from kubernetes.client.exceptions import ApiException

    params = [(k, v) for k, v in (query or {}).items() if v is not None]
    if hasattr(api_client, "param_serialize"):
        request = api_client.param_serialize(
            method, path, query_params=params, header_params=headers or {}, body=body, auth_settings=["BearerToken"]
        )
        response = api_client.call_api(*request, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            data = response.read()
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        return response.response
    return api_client.call_api(
        path,
        method,
        query_params=params,
        header_params=headers or {},
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
        _request_timeout=timeout,
    )
