"""The console's routes: each reads or acts through the engine, then renders a template. No other logic.

Blocking engine calls (cluster reads, dry runs) run in Starlette's thread pool, so one slow page never stalls
the others or the live streams. Errors: a `KubeopsError` (unreachable cluster, expired credential, missing
playbook, bad parameter) becomes a page with its message and hint; anything else a plain "internal error"
page. Neither shows a stack trace, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kubeops.actions.registry import Registry
from kubeops.console import filters
from kubeops.console.auth import Session, Sessions, TokenBook, csrf_ok
from kubeops.console.bodylimit import BodyLimit
from kubeops.console.headers import SecurityHeaders
from kubeops.console.throttle import LoginThrottle
from kubeops.engine import api, overview
from kubeops.engine.audit import Actor, AuditEntry
from kubeops.engine.checkpoints import CorruptRecord
from kubeops.engine.launcher import Launcher
from kubeops.engine.logging import get_logger, redact, redact_text
from kubeops.engine.run_index import RunIndex
from kubeops.errors import ClusterError, InputError, KubeopsError, NotFound, Unavailable
from kubeops.model.loader import available_playbooks
from kubeops.model.params import bind_params
from kubeops.settings import Settings

HERE = Path(__file__).parent
COOKIE = "kubeops_session"
LOGIN_COOKIE = "kubeops_login"
PAGE_SIZE = 50
STREAM_POLL_S = 0.2
STREAM_MAX_S = 600.0  # a stream ends after this; EventSource reconnects by itself
NODE_ACTIONS = ("drain-node", "decommission-node", "maintain-node", "replace-node")


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    settings: Settings
    registry: Registry
    tokens: TokenBook
    read_only: bool = False
    secure_cookies: bool = False  # set with TLS: the cookie then never travels in clear
    stats_interval_s: float = 0.5
    login_throttle: LoginThrottle | None = None  # None: the defaults of `kubeops.console.throttle`


class Refused(Exception):
    """An HTTP error page: `status` and a sentence (403 role or CSRF, 404 unknown run...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NeedLogin(Exception):
    pass


def build_app(config: ConsoleConfig) -> Starlette:
    """The ASGI app for one cluster."""
    settings = config.settings
    sessions = Sessions()
    throttle = config.login_throttle or LoginThrottle()
    launcher = Launcher(settings=settings, registry=config.registry)
    index = RunIndex(settings)
    log = get_logger()
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(cpu=filters.cpu, bytes=filters.size, pct=filters.pct, duration=filters.duration,
                       tojson_pretty=filters.pretty_json, step_duration=filters.step_duration, redact_params=redact,
                       redact=lambda v: redact_text(str(v)) if v is not None else "")

    # -- helpers -----------------------------------------------------------------------------------------------
    def session_of(request: Request) -> Session:
        session = sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise NeedLogin()
        return session

    def is_operator(session: Session) -> bool:
        return session.role == "operator" and not config.read_only

    def actor(session: Session) -> Actor:
        return Actor(session.name, session.role)

    def render(request: Request, template: str, status: int = 200, session: Session | None = None,
               **ctx: Any) -> HTMLResponse:
        html = env.get_template(template).render(
            request=request, session=session, operator=bool(session and is_operator(session)),
            cluster=settings.cluster, read_only=config.read_only, **ctx)
        return HTMLResponse(html, status_code=status)

    async def form_of(request: Request, session: Session, *, operator: bool = True) -> dict[str, str]:
        """The posted form, after the CSRF check (first: a forged request learns nothing) and the role check."""
        form = await request.form()
        given = form.get("csrf") or request.headers.get("x-csrf-token")
        if not csrf_ok(session, str(given) if given is not None else None):
            raise Refused(403, "refused: this request carries no valid CSRF token; reload the page and try again")
        if operator and not is_operator(session):
            why = "the console runs read-only" if config.read_only else f"role {session.role} may only look"
            raise Refused(403, f"forbidden: {why}")
        return {k: str(v) for k, v in form.items()}

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    def _playbook_choices() -> list[tuple[str, str]]:
        """(name, description) of each playbook found by name; an invalid one says so instead."""
        out = []
        for name in available_playbooks():
            try:
                out.append((name, api.load_playbook(name, registry=config.registry).description or ""))
            except KubeopsError as exc:
                out.append((name, f"invalid: {exc.message}"))
        return out

    def load_playbook(name: str) -> Any:
        if not name:
            raise InputError("choose a playbook")
        return api.load_playbook(name, registry=config.registry)

    # -- login ----------------------------------------------------------------------------------------------------
    async def login_page(request: Request) -> Response:
        import secrets

        nonce = secrets.token_urlsafe(24)
        response = render(request, "login.html", nonce=nonce, error=None)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=config.secure_cookies,
                            path="/login")
        return response

    async def login(request: Request) -> Response:
        form = await request.form()
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        given = str(form.get("csrf") or "")
        import hmac

        if not nonce or not hmac.compare_digest(nonce, given):
            raise Refused(403, "refused: the login form carries no valid CSRF token; reload the login page")
        client = request.client.host if request.client else "?"
        wait = throttle.wait_s(client)
        if wait > 0:  # refused before the token is looked at: a guess made now learns nothing
            seconds = max(1, math.ceil(wait))
            log.warning("console.login.throttled", client=client, retry_after_s=seconds)
            response = render(request, "login.html", status=429, nonce=nonce,
                              error=f"too many failed logins; try again in {seconds} s")
            response.headers["Retry-After"] = str(seconds)
            return response
        entry = config.tokens.check(str(form.get("token") or ""))
        if entry is None:
            throttle.failed(client)
            log.warning("console.login.failed", client=client)
            return render(request, "login.html", status=401, nonce=nonce, error="unknown token")
        throttle.succeeded(client)
        session = sessions.create(entry)
        log.info("console.login", token_name=entry.name, role=entry.role)
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=config.secure_cookies)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(request: Request) -> Response:
        session = session_of(request)
        await form_of(request, session, operator=False)
        sessions.drop(session.id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- runs -----------------------------------------------------------------------------------------------------
    async def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    async def runs(request: Request) -> Response:
        session = session_of(request)
        q = request.query_params
        cluster = q.get("cluster", settings.cluster)
        try:
            page_no = max(1, int(q.get("page", "1")))
        except ValueError:
            page_no = 1
        page = await call(index.page, status=q.get("status") or None, playbook=q.get("playbook") or None,
                          cluster=None if cluster == "*" else cluster or None, text=q.get("q") or None,
                          offset=(page_no - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        if q.get("format") == "json":
            from kubeops.engine.run_index import summary_fields

            return JSONResponse({"total": page.total, "runs": [summary_fields(s) for s in page.items]})
        chosen = {k: v for k, v in (("status", q.get("status")), ("playbook", q.get("playbook")),
                                    ("cluster", cluster), ("q", q.get("q"))) if v}
        pages = max(1, -(-page.total // PAGE_SIZE))

        def link(n: int) -> str:
            return "/runs?" + urlencode({**chosen, "page": n})

        return render(request, "runs.html", session=session, page=page, page_no=page_no, pages=pages, link=link,
                      filters=chosen, playbooks=await call(index.playbooks), cluster_filter=cluster,
                      statuses=("running", "done", "failed", "paused", "rejected", "unreadable"))

    def run_context(run_id: str) -> dict[str, Any]:
        live = launcher.live(run_id)
        try:
            record = api.get_run(run_id, settings=settings)
        except CorruptRecord:
            raise  # its own page: where the record is, why it is unreadable, what to do
        except InputError:
            if live is None:
                raise Refused(404, f"no run {run_id!r} in this cluster's store") from None
            record = None
        alive = launcher.is_alive(run_id)
        running = bool(record and record.get("status") == "running")
        process = launcher.process_alive(record) if record and running and not alive else None
        return {"record": record, "run_id": run_id, "alive": alive, "live_error": live.error if live else None,
                "resumable": bool(record and not alive and process is not True and not record.get("dry_run")
                                  and record.get("status") in ("failed", "paused", "running")),
                "elsewhere": process is True, "crashed": process is False,
                "final": not alive and (not running or process is False)}

    async def run_page(request: Request) -> Response:
        session = session_of(request)
        ctx = await call(run_context, request.path_params["run_id"])
        return render(request, "run.html", session=session, **ctx)

    async def run_events(request: Request) -> Response:
        session = session_of(request)
        run_id = request.path_params["run_id"]
        await call(run_context, run_id)  # 404 before the stream starts
        template = env.get_template("_run_body.html")

        async def stream() -> Any:
            last = None
            ends = time.monotonic() + STREAM_MAX_S
            yield "retry: 1000\n\n"
            while time.monotonic() < ends:
                if await request.is_disconnected():
                    return
                ctx = await call(run_context, run_id)
                html = template.render(session=session, operator=is_operator(session), **ctx)
                if html != last:
                    last = html
                    yield "event: update\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
                if ctx["final"]:
                    yield "event: end\ndata: end\n\n"
                    return
                await asyncio.sleep(STREAM_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def run_resume(request: Request) -> Response:
        session = session_of(request)
        form = await form_of(request, session)
        run_id = request.path_params["run_id"]
        await call(launcher.resume, run_id, actor=actor(session), force=form.get("force") == "yes")
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    async def run_cancel(request: Request) -> Response:
        session = session_of(request)
        await form_of(request, session)
        run_id = request.path_params["run_id"]
        if not launcher.cancel(run_id, actor=actor(session)):
            raise Refused(409, f"run {run_id} is not running in this console; nothing to cancel")
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    # -- launch ---------------------------------------------------------------------------------------------------
    def given_params(playbook: Any, values: dict[str, str]) -> dict[str, str]:
        """Form fields ``p.<name>``; an empty field means "not given" (the default applies)."""
        declared = {p.name for p in playbook.params}
        return {name[2:]: v for name, v in values.items()
                if name.startswith("p.") and name[2:] in declared and v.strip() != ""}

    def plan_token(session: Session, playbook: Any, given: dict[str, str]) -> str:
        """Binds a confirm to the plan that was shown: same session, playbook (content hash) and parameters."""
        import hashlib
        import hmac

        what = json.dumps([playbook.name, playbook.content_hash, sorted(given.items())])
        return hmac.new(session.csrf.encode(), what.encode(), hashlib.sha256).hexdigest()

    async def launch_page(request: Request) -> Response:
        session = session_of(request)
        if not is_operator(session):
            raise Refused(403, "forbidden: launching needs the operator role")
        name = request.query_params.get("playbook", "")
        if not name:
            return render(request, "launch_pick.html", session=session, playbooks=await call(_playbook_choices))
        playbook = await call(load_playbook, name)
        values = {k: v for k, v in request.query_params.items() if k != "playbook"}
        return render(request, "launch.html", session=session, playbook=playbook, values=values, error=None)

    async def launch_plan(request: Request) -> Response:
        session = session_of(request)
        form = await form_of(request, session)
        playbook = await call(load_playbook, form.get("playbook", ""))
        given = given_params(playbook, form)
        try:
            bound = bind_params(playbook, given, defaults=settings.params)  # the loader's own checks and messages
        except InputError as exc:
            return render(request, "launch.html", status=400, session=session, playbook=playbook, values=given,
                          error=exc)
        plan = await call(launcher.plan, playbook, params=given)
        lock = await call(_safe, overview.lock_view, settings)
        window = overview.window_view(settings, playbook)
        return render(request, "plan.html", session=session, playbook=playbook, given=given, bound=bound, plan=plan,
                      lock=lock, window=window, plan_token=plan_token(session, playbook, given))

    async def launch_confirm(request: Request) -> Response:
        session = session_of(request)
        form = await form_of(request, session)
        if form.get("confirm") != "yes":
            raise Refused(400, "a run starts only from the plan page's confirm button")
        playbook = await call(load_playbook, form.get("playbook", ""))
        given = given_params(playbook, form)
        bind_params(playbook, given, defaults=settings.params)
        import hmac

        if not hmac.compare_digest(form.get("plan", ""), plan_token(session, playbook, given)):
            raise Refused(400, "this run was not planned with these parameters (or the playbook changed since): "
                               "plan it again and confirm from the plan page")
        run_id = await call(launcher.launch, playbook, params=given, actor=actor(session))
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    # -- cluster views --------------------------------------------------------------------------------------------
    async def nodes(request: Request) -> Response:
        session = session_of(request)
        page = await call(overview.nodes_page, settings, interval_s=config.stats_interval_s)
        return render(request, "nodes.html", session=session, page=page, actions=NODE_ACTIONS)

    async def node(request: Request) -> Response:
        session = session_of(request)
        name = request.path_params["name"]
        try:
            page = await call(overview.node_page, settings, name, interval_s=config.stats_interval_s)
        except NotFound:
            raise Refused(404, f"no node {name!r} in cluster {settings.cluster}") from None
        return render(request, "node.html", session=session, page=page, actions=NODE_ACTIONS)

    async def apps(request: Request) -> Response:
        session = session_of(request)
        runs = await call(index.summaries)
        return render(request, "apps.html", session=session,
                      apps=await call(lambda: overview.apps_page(settings, runs=runs)))

    async def cluster_page(request: Request) -> Response:
        session = session_of(request)
        lock = await call(_safe, overview.lock_view, settings)
        window = overview.window_view(settings)
        scheds = await call(_safe, overview.schedules, settings)
        return render(request, "cluster.html", session=session, lock=lock, window=window, schedules=scheds)

    async def lock_break(request: Request) -> Response:
        session = session_of(request)
        await form_of(request, session)
        from kubeops.engine.guard import lock_for

        def do() -> list[str]:
            lock = lock_for(settings, required=True)
            assert lock is not None
            try:
                return lock.break_lock()
            finally:
                lock.kube.close()

        broken = await call(do)
        launcher.record(AuditEntry.make(actor(session), "lock.break", f"{settings.lock.namespace}/{settings.lock.name}",
                                        detail=f"released: {', '.join(broken) or 'nothing was held'}"))
        return RedirectResponse("/cluster", status_code=303)

    async def activity(request: Request) -> Response:
        session = session_of(request)
        return render(request, "activity.html", session=session, entries=await call(launcher.audit.recent))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    # -- errors ---------------------------------------------------------------------------------------------------
    async def on_need_login(request: Request, exc: Exception) -> Response:
        if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
            return RedirectResponse("/login", status_code=303)
        return render(request, "error.html", status=401, title="Log in first", message="log in first", hint=None)

    async def on_refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return render(request, "error.html", status=exc.status, session=sessions.get(request.cookies.get(COOKIE)),
                      title="Refused" if exc.status == 403 else "Not possible", message=exc.message, hint=None)

    async def on_kubeops(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KubeopsError)
        if isinstance(exc, Unavailable):
            status, title = 502, "The cluster did not answer"
        elif isinstance(exc, ClusterError):
            status, title = 502, "The cluster refused the request"
        elif isinstance(exc, InputError):
            status, title = 400, "Cannot do that"
        else:
            status, title = 500, "That did not work"
        log.warning("console.error", path=request.url.path, error=redact_text(exc.message))
        return render(request, "error.html", status=status, session=sessions.get(request.cookies.get(COOKIE)),
                      title=title,
                      message=redact_text(exc.message), hint=redact_text(exc.hint) if exc.hint else None)

    async def on_gone(request: Request, exc: Exception) -> Response:
        return Response(status_code=400)  # the client left mid-request (or was refused): nobody reads this

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.error("console.crash", path=request.url.path, error=redact_text(f"{type(exc).__name__}: {exc}"))
        return render(request, "error.html", status=500, title="Internal error",
                      message="the console hit an unexpected error; it is logged and the server keeps serving",
                      hint=None)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        await run_in_threadpool(launcher.shutdown)

    routes = [
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/runs", runs),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/events", run_events),
        Route("/runs/{run_id}/resume", run_resume, methods=["POST"]),
        Route("/runs/{run_id}/cancel", run_cancel, methods=["POST"]),
        Route("/launch", launch_page, methods=["GET"]),
        Route("/launch", launch_plan, methods=["POST"]),
        Route("/launch/confirm", launch_confirm, methods=["POST"]),
        Route("/nodes", nodes),
        Route("/nodes/{name}", node),
        Route("/apps", apps),
        Route("/cluster", cluster_page),
        Route("/cluster/lock/break", lock_break, methods=["POST"]),
        Route("/activity", activity),
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={NeedLogin: on_need_login, Refused: on_refused, KubeopsError: on_kubeops,
                            ClientDisconnect: on_gone, Exception: on_crash},
        lifespan=lifespan,
    )
    app.state.launcher = launcher
    return SecurityHeaders(BodyLimit(app))  # type: ignore[return-value]


def _safe(fn: Callable[..., Any], *args: Any) -> Any:
    """A panel that must not take its page down: the value, or the error's message as a string."""
    try:
        return fn(*args)
    except KubeopsError as exc:
        return redact_text(exc.message)
