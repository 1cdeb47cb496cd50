"""The HTTP face of the sandbox: the Kubernetes REST API over a `Cluster`, with faults and a request log.

Standard library only (ThreadingHTTPServer, HTTP/1.1 keep-alive, chunked watch streams): kmock was looked at, but
it is aiohttp-based and models a mock with canned responses, not resourceVersions, watches resuming from a
version, deletion grace or field selectors, so the semantics would all be ours anyway.

Routes: discovery (``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``, classic and
aggregated), resources under ``/api/v1`` and ``/apis/<g>/<v>`` (``[namespaces/<ns>/]<plural>[/<name>[/<sub>]]``),
and sandbox-only endpoints under ``/sandbox/v1/`` (never faulted): ``health``, ``faults`` (GET/POST),
``tick`` (POST: run reconcilers now), ``clock`` (POST ``{"advance_s": N}``: advance sandbox time, then tick),
``info``, and the plug-ins' (``node-faults``: see kubeops/sandbox/nodefailure.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from kubeops.errors import PlaybookError
from kubeops.sandbox import fieldvalidation, managedfields, openapi, openapi_v2, rbac, tables, wire
from kubeops.sandbox import status as st
from kubeops.sandbox.cluster import Cluster
from kubeops.sandbox.discovery import AGGREGATED_V2, VERSION_INFO, ResourceInfo
from kubeops.sandbox.faults import FaultConfig, FaultConfigError, Faults
from kubeops.sandbox.requestlog import RequestLog
from kubeops.sandbox.selectors import fields_match, labels_match
from kubeops.sandbox.store import Obj, WatchEvent, clone
from kubeops.yamlsource import parse_yaml

log = logging.getLogger("kubeops.sandbox.server")
SANDBOX_TOKEN = rbac.ADMIN_TOKEN  # written into the sandbox kubeconfig; not a secret

DEFAULT_WATCH_TIMEOUT_S = 1800
MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver refuses bigger request bodies with 413
BOOKMARK_INTERVAL_S = 10.0


def _too_large() -> st.ApiError:
    return st.ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY_BYTES}")


def _json_dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _encoder() -> Any:
    """orjson when installed: a 500-pod page (1.1 MB) encodes in ~2 ms instead of ~16 ms, which was most of the
    server's time per page of a paginated list. Falls back to the stdlib for anything orjson refuses."""
    try:
        import orjson
    except ImportError:
        return _json_dumps

    def dumps(body: Any) -> bytes:
        try:
            return orjson.dumps(body)
        except TypeError:
            return _json_dumps(body)

    return dumps


_dumps = _encoder()


class _Route:
    """What a request path names."""

    __slots__ = ("info", "name", "namespace", "proxy_path", "subresource", "version")

    def __init__(self, info: ResourceInfo, version: str, namespace: str | None, name: str | None,
                 subresource: str | None, proxy_path: str = "") -> None:
        self.info, self.version, self.namespace, self.name = info, version, namespace, name
        self.subresource, self.proxy_path = subresource, proxy_path


class _DropConnection(Exception):
    pass


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, cluster: Cluster, *, host: str = "127.0.0.1", port: int = 0, faults: Faults | None = None,
                 request_log: RequestLog | None = None) -> None:
        self.cluster = cluster
        self.faults = faults or Faults()
        self.request_log = request_log or RequestLog(None)
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="sandbox-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.request_log.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer
    server_version = "kubeops-sandbox"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without NODELAY, Nagle + delayed ACK add ~40 ms per response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- entry points -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        self._rec: dict[str, Any] = {
            "ts": round(time.time(), 6), "method": method, "path": path, "query": query, "status": 0,
            "dry_run": query.get("dryRun") == "All", "verb": "", "resource": "", "group": "",
            "subresource": "", "namespace": "", "name": "", "user_agent": self.headers.get("User-Agent", ""),
            "content_type": wire.media_type(self.headers.get("Content-Type")),
        }
        self._status_sent = 0
        self._started = started
        self._logged = False
        self._body_cache: bytes | None = None
        try:
            if path.startswith("/sandbox/"):
                self._rec["verb"] = "sandbox"
                self._sandbox(method, path)
            elif not self._authenticated():
                self._rec["verb"] = "unauthorized"
                self._send_json(401, st.failure(401, "Unauthorized", "Unauthorized"))
            else:
                fault = self.server.faults.decide(method, path)
                if fault is not None:
                    if fault.delay_s:
                        time.sleep(fault.delay_s)
                    if fault.kind:
                        self._rec["fault"] = fault.kind
                        self._inject(fault.kind, method, path)
                        return
                self._api(method, path, query)
        except _DropConnection:
            self._rec["status"] = 0
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        except st.ApiError as err:
            self._send_json(err.code, err.body(), headers=err.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the server must answer, like kube-apiserver's panic recovery
            log.exception("internal error on %s %s", method, path)
            self._send_json(500, st.failure(500, "InternalError", f"Internal error occurred: {exc}",
                                            details={"causes": [{"message": str(exc)}]}))
        finally:
            self._log_request()

    def _authenticated(self) -> bool:
        """A bearer token the sandbox does not know is refused with 401, as kube-apiserver refuses a bad one.

        Who a token is (admin, a ServiceAccount, anonymous without a header) and what it may do is
        `kubeops.sandbox.rbac`'s job; the scenario settings ``tokens``, ``token_users`` and ``rbac`` drive it.
        """
        user = rbac.authenticate(self.server.cluster, self.headers.get("Authorization"))
        if user is not None:
            user = rbac.impersonate(self.server.cluster, user, self.headers.get("Impersonate-User"),
                                    self.headers.get_all("Impersonate-Group") or [])
        self._user = user
        return user is not None

    # ---- plumbing -----------------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """The request body, at most `MAX_BODY_BYTES` (kube-apiserver's limit): a bigger one is refused with 413
        before it is read, and the connection is closed (its rest is never read, never held in memory)."""
        if self._body_cache is not None:
            return self._body_cache
        length = self.headers.get("Content-Length")
        if length:
            try:
                size = int(length)
            except ValueError:
                self._refuse_body()
                raise st.bad_request(f"invalid Content-Length {length!r}") from None
            if size > MAX_BODY_BYTES:
                self._refuse_body()
                raise _too_large()
            data = self.rfile.read(size)
        elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                try:
                    size = int(self.rfile.readline(1024).strip().split(b";")[0] or b"0", 16)
                except ValueError:
                    self._refuse_body()
                    raise st.bad_request("invalid chunked request body") from None
                if size == 0:
                    self.rfile.readline(1024)
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    self._refuse_body()
                    raise _too_large()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            data = b"".join(chunks)
        else:
            data = b""
        self._body_cache = data
        return data

    def _refuse_body(self) -> None:
        """Leave an unread body unread: answer, then close, so keep-alive never parses its bytes as a request."""
        self._body_cache = b""
        self.close_connection = True

    def _json_body(self, *, allow_yaml: bool = False) -> Any:
        raw = self._read_body()
        if not raw.strip():
            return None
        ctype = (self.headers.get("Content-Type") or "").lower()
        try:
            if wire.is_protobuf(ctype):
                return wire.decode_protobuf(raw)
            if allow_yaml and "yaml" in ctype:
                return parse_yaml(raw.decode("utf-8"), path="request body").data  # bounded: no alias bombs
            return json.loads(raw)
        except PlaybookError as exc:
            raise st.bad_request(f"error decoding request body: {exc.message}") from None
        except (ValueError, yaml.YAMLError) as exc:
            raise st.bad_request(f"error decoding request body: {exc}") from None
        except RecursionError:  # nesting deeper than any object: hostile, refused like any malformed body
            raise st.bad_request("error decoding request body: nested too deeply") from None

    def _log_request(self) -> None:
        """Write this request's line once. Plain answers log before their bytes go out, so a client that has its
        answer always finds the request in requests.jsonl (tests count requests right after making them)."""
        if self._logged:
            return
        self._logged = True
        self._rec["status"] = self._status_sent
        self._rec["duration_ms"] = round((time.perf_counter() - self._started) * 1000, 3)
        self.server.request_log.write(self._rec)

    def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._status_sent = code
        self._log_request()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        warning = fieldvalidation.warning_header()
        if warning:
            self.send_header("Warning", warning)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, body: Any, *, headers: dict[str, str] | None = None,
                   content_type: str = "application/json") -> None:
        # Drain an unread request body so keep-alive stays in sync.
        if self._body_cache is None and self.headers.get("Content-Length"):
            self._read_body()
        data, content_type = wire.encode(body, accept=self.headers.get("Accept"), content_type=content_type,
                                         dumps=_dumps)
        self._send(code, data, content_type, headers)

    def _inject(self, kind: str, method: str, path: str) -> None:
        if kind == "drop":
            raise _DropConnection()
        if kind == "429":
            retry = self.server.faults.config.retry_after_s
            err = st.too_many_requests("Too many requests, please try again later.", retry)
            self._send_json(429, err.body(), headers=err.headers)
        elif kind == "401":
            self._send_json(401, st.failure(401, "Unauthorized", "Unauthorized"))
        elif kind == "403":
            self._send_json(403, st.forbidden(method, path))
        elif kind == "503":
            self._send_json(503, st.failure(503, "ServiceUnavailable",
                                            "the server is currently unable to handle the request"),
                            headers={"Retry-After": str(self.server.faults.config.retry_after_s)})
        else:
            self._send_json(500, st.failure(500, "InternalError",
                                            "Internal error occurred: injected fault (kubeops sandbox)"))

    # ---- sandbox-only endpoints ---------------------------------------------------------------------------

    def _sandbox(self, method: str, path: str) -> None:
        cluster = self.server.cluster
        what = path[len("/sandbox/v1/"):].strip("/") if path.startswith("/sandbox/v1/") else ""
        if what == "health":
            self._send_json(200, {"ok": True, "resourceVersion": str(cluster.store.resource_version)})
        elif what == "faults" and method == "GET":
            self._send_json(200, self.server.faults.config.to_dict())
        elif what == "faults" and method in ("POST", "PUT"):
            try:
                cfg = FaultConfig.from_dict(self._json_body() or {})
            except FaultConfigError as exc:
                raise st.bad_request(f"faults: {exc}") from None
            self.server.faults.set(cfg)
            self._send_json(200, cfg.to_dict())
        elif what == "tick" and method == "POST":
            cluster.tick()
            self._send_json(200, {"ok": True, "resourceVersion": str(cluster.store.resource_version)})
        elif what == "clock" and method == "POST":
            body = self._json_body() or {}
            cluster.clock.advance(float(body.get("advance_s", 0)))
            cluster.tick()
            self._send_json(200, {"now": cluster.clock.now(), "offset_s": cluster.clock.offset_s})
        elif what == "info":
            scenario = cluster.scenario
            self._send_json(200, {
                "scenario": scenario.name if scenario else None,
                "resourceVersion": str(cluster.store.resource_version),
                "counts": {i.key: cluster.store.count(i.key) for i in cluster.catalog.resources
                           if cluster.store.count(i.key)},
                "aws_url": cluster.aws_url,
            })
        elif what.partition("/")[0] in cluster.sandbox_endpoints:  # plug-ins' endpoints (node-faults...)
            head, _, rest = what.partition("/")
            body = self._json_body() if method in ("POST", "PUT") else None
            self._send_json(*cluster.sandbox_endpoints[head](cluster, method, rest, body))
        else:
            raise st.not_found_path()

    # ---- the Kubernetes API -------------------------------------------------------------------------------

    def _accept(self) -> str:
        return (self.headers.get("Accept") or "").replace(" ", "")

    def _api(self, method: str, path: str, query: dict[str, str]) -> None:
        catalog = self.server.cluster.catalog
        parts = [p for p in path.split("/") if p]
        if method == "GET" and path in ("/healthz", "/livez", "/readyz"):
            self._rec["verb"] = "health"
            self._send(200, b"ok", "text/plain; charset=utf-8")
            return
        if method == "GET" and path == "/version":
            self._rec["verb"] = "discovery"
            self._send_json(200, VERSION_INFO)
            return
        if method == "GET" and path == "/openapi/v2":
            self._rec["verb"] = "discovery"
            self._send(200, *openapi_v2.render(catalog, self.headers.get("Accept")))
            return
        if method == "GET" and parts[:2] == ["openapi", "v3"]:
            self._rec["verb"] = "discovery"
            gv = parts[2:]
            doc = openapi.root(catalog) if not gv else (
                openapi.group_version(catalog, "", gv[1]) if gv[0] == "api" and len(gv) == 2 else
                openapi.group_version(catalog, gv[1], gv[2]) if gv[0] == "apis" and len(gv) == 3 else None)
            if doc is None:
                raise st.not_found_path()
            self._send_json(200, doc)
            return
        if not parts or parts[0] not in ("api", "apis"):
            raise st.not_found_path()
        legacy = parts[0] == "api"
        if legacy:
            group = ""
            if len(parts) == 1:
                self._discovery(method, legacy=True)
                return
            version = parts[1]
            rest = parts[2:]
        else:
            if len(parts) == 1:
                self._discovery(method, legacy=False)
                return
            group = parts[1]
            if len(parts) == 2:
                self._rec["verb"] = "discovery"
                doc = catalog.api_group(group)
                if doc is None:
                    raise st.not_found_path()
                self._send_json(200, doc)
                return
            version = parts[2]
            rest = parts[3:]
        if not catalog.has_group_version(group, version):
            raise st.not_found_path()
        if not rest:
            self._rec["verb"] = "discovery"
            if method != "GET":
                raise st.method_not_allowed()
            self._send_json(200, catalog.resource_list(group, version))
            return
        route = self._route(group, version, rest)
        self._rec.update(resource=route.info.plural, group=group, subresource=route.subresource or "",
                         namespace=route.namespace or "", name=route.name or "")
        self._authorize(method, route, group, query)
        if rbac.is_review(route.info):
            self._rec["verb"] = "create"
            if method != "POST" or route.name:
                raise st.method_not_allowed()
            self._send_json(*rbac.review(self.server.cluster, self._user, route.info, version, self._json_body()))
            return
        # the store's hooks read fieldValidation (unknown fields of custom resources) and add Warning headers
        with fieldvalidation.writing(method, query, version=version, subresource=route.subresource,
                                     content_type=self.headers.get("Content-Type") or ""):
            self._dispatch(method, route, query)

    def _authorize(self, method: str, route: _Route, group: str, query: dict[str, str]) -> None:
        """RBAC (`kubeops.sandbox.rbac`): a 403 Status when the scenario turned it on and no rule allows this."""
        attrs = rbac.request_attributes(self._user, method, group=group, version=route.version, info=route.info,
                                        namespace=route.namespace, name=route.name, subresource=route.subresource,
                                        query=query)
        self._rec.update(user=attrs.user.name, verb=attrs.verb)
        rbac.check(self.server.cluster, attrs)

    def _discovery(self, method: str, *, legacy: bool) -> None:
        self._rec["verb"] = "discovery"
        catalog = self.server.cluster.catalog
        accept = self._accept()
        if "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept + ";":
            self._send_json(200, catalog.aggregated(legacy=legacy), content_type=AGGREGATED_V2)
            return
        self._send_json(200, catalog.api_versions() if legacy else catalog.api_group_list())

    def _route(self, group: str, version: str, rest: list[str]) -> _Route:
        catalog = self.server.cluster.catalog
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace = rest[1]
            rest = rest[2:]
        info = catalog.lookup(group, version, rest[0])
        if info is None:
            raise st.not_found_path()
        if namespace is not None and not info.namespaced:
            raise st.not_found_path()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        proxy_path = "/".join(rest[3:]) if sub == "proxy" else ""
        if sub and sub != "proxy" and len(rest) > 3:
            raise st.not_found_path()
        if sub and info.subresource(sub) is None:
            raise st.not_found_path()
        return _Route(info, version, namespace, name, sub, proxy_path)

    def _dispatch(self, method: str, route: _Route, query: dict[str, str]) -> None:
        info = route.info
        cluster = self.server.cluster
        if info.key in cluster.group_handlers:
            self._rec["verb"] = "get" if route.name else "list"
            if method != "GET":
                raise st.method_not_allowed()
            body = cluster.group_handlers[info.key](cluster, info, route.namespace, route.name, query)
            self._send_json(200, body)
            return
        dry_run = self._dry_run(query)
        if route.subresource:
            self._subresource(method, route, query, dry_run)
            return
        if method == "GET" and route.name:
            self._rec["verb"] = "get"
            self._get(route, query)
        elif method == "GET":
            if query.get("watch") in ("1", "true", "True"):
                self._rec["verb"] = "watch"
                self._watch(route, query)
            else:
                self._rec["verb"] = "list"
                self._list(route, query)
        elif method == "POST" and not route.name:
            self._rec["verb"] = "create"
            self._create(route, dry_run)
        elif method == "PUT" and route.name:
            self._rec["verb"] = "update"
            self._update(route, None, dry_run)
        elif method == "PATCH" and route.name:
            self._rec["verb"] = "patch"
            self._patch(route, None, dry_run)
        elif method == "DELETE" and route.name:
            self._rec["verb"] = "delete"
            self._delete(route, query, dry_run)
        elif method == "DELETE":
            self._rec["verb"] = "deletecollection"
            self._delete_collection(route, query, dry_run)
        else:
            raise st.method_not_allowed()

    def _dry_run(self, query: dict[str, str]) -> bool:
        value = query.get("dryRun")
        if value is None or value == "":
            return False
        if value != "All":
            raise st.bad_request(f'Invalid dryRun value: "{value}"; only "All" is supported')
        return True

    def _ns(self, route: _Route) -> str | None:
        if route.info.namespaced and route.name is not None and route.namespace is None:
            raise st.not_found_path()
        return route.namespace

    def _out(self, obj: Obj, route: _Route) -> Obj:
        obj["apiVersion"] = route.info.api_version(route.version)
        return obj

    def _wants_table(self) -> bool:
        return "as=Table" in self._accept()

    def _get(self, route: _Route, query: dict[str, str]) -> None:
        store = self.server.cluster.store
        obj = store.get(route.info.key, self._ns(route), route.name or "", copy=False)
        if self._wants_table():
            body = tables.table(route.info.key, [obj], now=self.server.cluster.clock.now(),
                                include_object=query.get("includeObject", "Metadata"),
                                list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")})
            self._send_json(200, body)
            return
        out = dict(obj)
        out["apiVersion"] = route.info.api_version(route.version)
        self._send_json(200, out)

    def _list(self, route: _Route, query: dict[str, str]) -> None:
        store = self.server.cluster.store
        try:
            limit = int(query.get("limit") or 0)
        except ValueError:
            raise st.bad_request(f"invalid limit: {query.get('limit')}") from None
        result = store.list(route.info.key, namespace=route.namespace, label_selector=query.get("labelSelector"),
                            field_selector=query.get("fieldSelector"), limit=max(limit, 0),
                            continue_token=query.get("continue") or None, copy=False)
        meta: dict[str, Any] = {"resourceVersion": result.resource_version}
        if result.continue_token:
            meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
        if self._wants_table():
            body = tables.table(route.info.key, result.items, now=self.server.cluster.clock.now(),
                                include_object=query.get("includeObject", "Metadata"), list_meta=meta)
            self._send_json(200, body)
            return
        api_version = route.info.api_version(route.version)
        self._send_json(200, {"kind": f"{route.info.kind}List", "apiVersion": api_version, "metadata": meta,
                              "items": result.items})

    def _create(self, route: _Route, dry_run: bool) -> None:
        cluster = self.server.cluster
        body = self._json_body()
        if not isinstance(body, dict):
            raise st.bad_request("the body of the request was in an unknown format")
        self._check_kind(route, body)
        if route.info.has_status and route.info.plural != "nodes":
            body.pop("status", None)
        obj = cluster.store.create(route.info.key, body, namespace=route.namespace, dry_run=dry_run,
                                   manager=self._manager(route, "Update"))
        self._send_json(201, self._out(obj, route))

    def _manager(self, route: _Route, operation: str, subresource: str | None = None) -> managedfields.Manager:
        """Who this write is for metadata.managedFields: ``fieldManager``, else the User-Agent's program."""
        given = self._rec["query"].get("fieldManager") or ""
        if len(given) > 128:
            options = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(self.command, "PatchOptions")
            raise st.invalid("meta.k8s.io", options, "", [
                ("FieldValueTooLong", "fieldManager", "Too long: may not be more than 128 bytes")])
        name = managedfields.manager_name(given, self._rec["user_agent"])
        return managedfields.Manager(name, operation, route.info.api_version(route.version), subresource or "")

    def _check_target(self, route: _Route, meta: Obj) -> None:
        """A body naming another object than the URL (PUT, apply) is refused, as the API server refuses it."""
        if meta.get("name") and meta["name"] != route.name:
            raise st.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                 f"({route.name})")
        if route.namespace and meta.get("namespace") and meta["namespace"] != route.namespace:
            raise st.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                 "request")

    def _check_kind(self, route: _Route, body: Obj) -> None:
        kind = body.get("kind")
        if kind and kind != route.info.kind and route.subresource is None:
            raise st.bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the "
                                 f"expected API version ({route.info.api_version(route.version)})"
                                 if body.get("apiVersion") != route.info.api_version(route.version)
                                 else f"{kind} in version \"{route.version}\" cannot be handled as a "
                                      f"{route.info.kind}: no kind \"{kind}\" is registered")

    def _update(self, route: _Route, subresource: str | None, dry_run: bool) -> None:
        body = self._json_body()
        if not isinstance(body, dict):
            raise st.bad_request("the body of the request was in an unknown format")
        self._check_kind(route, body)
        meta = body.setdefault("metadata", {})
        self._check_target(route, meta)
        meta["name"] = route.name
        obj = self.server.cluster.store.update(route.info.key, body, namespace=self._ns(route),
                                               subresource=subresource, dry_run=dry_run,
                                               manager=self._manager(route, "Update", subresource))
        self._send_json(200, self._out(obj, route))

    def _patch(self, route: _Route, subresource: str | None, dry_run: bool) -> None:
        ctype = self.headers.get("Content-Type") or ""
        query = self._rec["query"]
        applying = wire.media_type(ctype) == "application/apply-patch+yaml"
        if applying and not query.get("fieldManager"):
            raise st.invalid("meta.k8s.io", "PatchOptions", "", [
                ("FieldValueRequired", "fieldManager", "Required value: is required for apply patch")])
        if not applying and "force" in query:
            raise st.invalid("meta.k8s.io", "PatchOptions", "", [
                ("FieldValueForbidden", "force", "Forbidden: may not be specified for non-apply patch")])
        body = self._json_body(allow_yaml=True)
        if body is None:
            raise st.bad_request("the body of the request was empty")
        if applying:
            self._apply(route, subresource, body, dry_run)
            return
        obj = self.server.cluster.store.patch(route.info.key, self._ns(route), route.name or "", body, ctype,
                                              subresource=subresource, dry_run=dry_run,
                                              manager=self._manager(route, "Update", subresource))
        self._send_json(200, self._out(obj, route))

    def _apply(self, route: _Route, subresource: str | None, body: Any, dry_run: bool) -> None:
        """Server-side apply: 201 when it created the object, like kube-apiserver (kubeops/sandbox/apply.py)."""
        if not isinstance(body, dict):
            raise st.bad_request("error decoding YAML: the apply configuration must be an object")
        self._check_kind(route, body)
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        self._check_target(route, meta)
        body["metadata"] = {**meta, "name": route.name}
        force = self._rec["query"].get("force", "") in ("1", "t", "T", "true", "True", "TRUE")  # Go's ParseBool
        obj, created = self.server.cluster.store.apply(
            route.info.key, self._ns(route), route.name or "", body, self._manager(route, "Apply", subresource),
            force=force, subresource=subresource, dry_run=dry_run)
        self._send_json(201 if created else 200, self._out(obj, route))

    def _delete_options(self, query: dict[str, str]) -> dict[str, Any]:
        opts = self._json_body() or {}
        if not isinstance(opts, dict):
            raise st.bad_request("DeleteOptions must be an object")
        if "gracePeriodSeconds" in query:
            try:
                opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            except ValueError:
                raise st.bad_request("invalid gracePeriodSeconds") from None
        if "propagationPolicy" in query:
            opts["propagationPolicy"] = query["propagationPolicy"]
        if opts.get("orphanDependents") is True and "propagationPolicy" not in opts:
            opts["propagationPolicy"] = "Orphan"
        if opts.get("dryRun") == ["All"]:
            self._rec["dry_run"] = True
        return opts

    def _delete(self, route: _Route, query: dict[str, str], dry_run: bool) -> None:
        opts = self._delete_options(query)
        dry_run = dry_run or opts.get("dryRun") == ["All"]
        obj, _removed = self.server.cluster.store.delete(
            route.info.key, self._ns(route), route.name or "", grace_period_s=opts.get("gracePeriodSeconds"),
            propagation_policy=opts.get("propagationPolicy"), preconditions=opts.get("preconditions"),
            dry_run=dry_run)
        self._send_json(200, self._out(obj, route))

    def _delete_collection(self, route: _Route, query: dict[str, str], dry_run: bool) -> None:
        store = self.server.cluster.store
        opts = self._delete_options(query)
        dry_run = dry_run or opts.get("dryRun") == ["All"]
        result = store.list(route.info.key, namespace=route.namespace, label_selector=query.get("labelSelector"),
                            field_selector=query.get("fieldSelector"), copy=False)
        items = []
        for obj in result.items:
            meta = obj["metadata"]
            try:
                out, _ = store.delete(route.info.key, meta.get("namespace"), meta["name"],
                                      grace_period_s=opts.get("gracePeriodSeconds"),
                                      propagation_policy=opts.get("propagationPolicy"), dry_run=dry_run)
                items.append(out)
            except st.ApiError as err:
                if err.code != 404:
                    raise
        self._send_json(200, {"kind": f"{route.info.kind}List", "apiVersion": route.info.api_version(route.version),
                              "metadata": {"resourceVersion": str(store.resource_version)}, "items": items})

    # ---- subresources -------------------------------------------------------------------------------------

    def _subresource(self, method: str, route: _Route, query: dict[str, str], dry_run: bool) -> None:
        cluster = self.server.cluster
        sub = route.subresource or ""
        key = (route.info.key, sub)
        if sub == "status":
            if method == "GET":
                self._rec["verb"] = "get"
                self._get(route, query)
            elif method == "PUT":
                self._rec["verb"] = "update"
                self._update(route, "status", dry_run)
            elif method == "PATCH":
                self._rec["verb"] = "patch"
                self._patch(route, "status", dry_run)
            else:
                raise st.method_not_allowed()
            return
        if sub == "scale":
            self._scale(method, route, dry_run)
            return
        if sub == "finalize":  # namespaces: PUT only, changes spec.finalizers alone (see store.py)
            if method != "PUT":
                raise st.method_not_allowed()
            self._rec["verb"] = "update"
            self._update(route, "finalize", dry_run)
            return
        if sub == "proxy":
            self._rec["verb"] = "proxy"
            handler = cluster.proxies.get(key)
            if handler is None:
                raise st.not_found_path()
            cluster.store.get(route.info.key, route.namespace, route.name or "", copy=False)
            code, body, ctype = handler(cluster, route.namespace, route.name or "", route.proxy_path, query)
            self._send(code, body, ctype)
            return
        if sub == "log" and method == "GET":
            self._rec["verb"] = "get"
            cluster.store.get(route.info.key, route.namespace, route.name or "", copy=False)
            self._send(200, b"", "text/plain")
            return
        if sub == "binding" and method == "POST":
            self._rec["verb"] = "create"
            self._binding(route, dry_run)
            return
        if method != "POST":
            raise st.method_not_allowed()
        self._rec["verb"] = "create"
        handler = cluster.subresources.get(key)
        if handler is None:
            raise st.not_found_path()
        body = self._json_body() or {}
        if not isinstance(body, dict):
            raise st.bad_request("the body of the request was in an unknown format")
        dry_run = dry_run or (body.get("deleteOptions") or {}).get("dryRun") == ["All"]
        self._rec["dry_run"] = dry_run
        code, out = handler(cluster, route.namespace, route.name or "", body, dry_run)
        self._send_json(code, out)

    def _binding(self, route: _Route, dry_run: bool) -> None:
        body = self._json_body() or {}
        target = (body.get("target") or {}).get("name")
        if not target:
            raise st.invalid("", "Binding", route.name or "", [("FieldValueRequired", "target.name",
                                                                  "Required value")])
        store = self.server.cluster.store

        def bind(pod: Obj) -> Obj | bool:
            if (pod.get("spec") or {}).get("nodeName"):
                raise st.conflict("", "pods", route.name or "",
                                  f"pod {route.name} is already assigned to node \"{pod['spec']['nodeName']}\"")
            if dry_run:
                return False
            pod["spec"]["nodeName"] = target
            return pod

        if store.modify("pods", route.namespace, route.name or "", bind) is None:
            raise st.not_found("", "pods", route.name or "")
        self._send_json(201, st.success())

    def _scale(self, method: str, route: _Route, dry_run: bool) -> None:
        cluster = self.server.cluster
        store = cluster.store
        name = route.name or ""
        with store.lock:
            obj = store.get(route.info.key, route.namespace, name, copy=False)
            scale = cluster.scale_of(route.info.key, obj)
            if method == "GET":
                self._rec["verb"] = "get"
                self._send_json(200, scale)
                return
            if method == "PUT":
                self._rec["verb"] = "update"
                body = self._json_body() or {}
                new_scale = body
            elif method == "PATCH":
                self._rec["verb"] = "patch"
                from kubeops.sandbox import patch as patching

                try:
                    new_scale = patching.apply_patch(scale, self._json_body(allow_yaml=True),
                                                     self.headers.get("Content-Type") or "")
                except patching.PatchError as exc:
                    raise st.ApiError(exc.code if exc.code != 415 else 415, "Invalid" if exc.code == 422
                                      else "BadRequest", str(exc)) from None
            else:
                raise st.method_not_allowed()
            replicas = (new_scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise st.invalid("autoscaling", "Scale", name, [(
                    "FieldValueInvalid", "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0")])
            expect = (new_scale.get("metadata") or {}).get("resourceVersion")
            updated = clone(obj)
            updated["spec"]["replicas"] = replicas
            updated["metadata"]["resourceVersion"] = expect or ""
            result = store.update(route.info.key, updated, namespace=route.namespace, dry_run=dry_run,
                                  manager=self._manager(route, "Update", "scale"))
            self._send_json(200, cluster.scale_of(route.info.key, result))

    # ---- watch --------------------------------------------------------------------------------------------

    def _watch(self, route: _Route, query: dict[str, str]) -> None:
        cluster = self.server.cluster
        store = cluster.store
        info = route.info
        labels, fields = store.parse_selectors(info.key, query.get("labelSelector"), query.get("fieldSelector"))
        try:
            timeout_s = float(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_S)
        except ValueError:
            raise st.bad_request("invalid timeoutSeconds") from None
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1", "True")
        table = self._wants_table()
        api_version = info.api_version(route.version)
        namespace = route.namespace
        name_filter = None
        rv_text = query.get("resourceVersion") or ""
        initial: list[Obj] = []
        with store.lock:
            if rv_text in ("", "0"):
                result = store.list(info.key, namespace=namespace, copy=False)
                initial = [o for o in result.items if labels_match(labels, o) and fields_match(fields, o)]
                pos = int(result.resource_version)
                too_old = None
            else:
                try:
                    pos = int(rv_text)
                except ValueError:
                    raise st.bad_request(f'invalid resource version: "{rv_text}"') from None
                too_old = None
                if pos < store.oldest_resource_version:
                    too_old = st.gone(f"too old resource version: {pos} ({store.oldest_resource_version})")
        as_protobuf = not table and wire.watch_in_protobuf(self.headers.get("Accept"), api_version, info.kind)
        self._status_sent = 200
        self.send_response(200)
        self.send_header("Content-Type", wire.PROTOBUF_WATCH if as_protobuf else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._log_request()  # a watch is logged when it starts: it may stream until its client dies

        def emit(etype: str, obj: Obj) -> None:
            if etype in ("BOOKMARK", "ERROR"):
                payload = obj
            elif table:
                payload = tables.table(info.key, [obj], now=cluster.clock.now(),
                                       include_object=query.get("includeObject", "Metadata"), headers=False)
            else:
                payload = dict(obj)
                payload["apiVersion"] = api_version
            data = wire.watch_event(etype, payload, as_protobuf=as_protobuf, dumps=_dumps)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def finish() -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        if too_old is not None:
            body = too_old.body()
            emit("ERROR", body)
            finish()
            return
        if table and initial:
            # kubectl get -w prints the first event's columns: send one headed table for the initial state.
            payload = tables.table(info.key, initial, now=cluster.clock.now(),
                                   include_object=query.get("includeObject", "Metadata"))
            data = _dumps({"type": "ADDED", "object": payload}) + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            for obj in initial:
                emit("ADDED", obj)
        deadline = time.monotonic() + timeout_s
        last_bookmark = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                events = store.wait_for_events(pos, min(remaining, 1.0))
            except st.ApiError as err:
                emit("ERROR", err.body())
                break
            for ev in events:
                pos = ev.rv
                if ev.resource != info.key or (namespace and ev.namespace != namespace):
                    continue
                if name_filter and ev.name != name_filter:
                    continue
                out = _filter_event(ev, labels, fields)
                if out is not None:
                    emit(out[0], out[1])
            if bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL_S:
                emit("BOOKMARK", {"kind": info.kind, "apiVersion": api_version,
                                  "metadata": {"resourceVersion": str(pos)}})
                last_bookmark = time.monotonic()
            if self.server._BaseServer__shutdown_request:  # type: ignore[attr-defined]
                break
        finish()


def _filter_event(ev: WatchEvent, labels: Any, fields: Any) -> tuple[str, Obj] | None:
    def ok(o: Obj | None) -> bool:
        return o is not None and labels_match(labels, o) and fields_match(fields, o)

    if not labels and not fields:
        return ev.type, ev.obj
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if ok(ev.obj) else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if ok(ev.old) or ok(ev.obj) else None
    was, now = ok(ev.old), ok(ev.obj)
    if was and now:
        return "MODIFIED", ev.obj
    if now:
        return "ADDED", ev.obj
    if was:
        return "DELETED", ev.obj
    return None


__all__ = ["HTTPStatus", "SandboxServer"]
