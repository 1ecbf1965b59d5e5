"""Console pages and actions over JobqService, under the API's authentication and roles.

Every page and action names the RPC it stands for; `authorize` (the interceptor's check)
decides it from the same role table, and the service applies the caller's tenant scope.
A session is a signed cookie naming the key (or holding the JWT) given at login, which is
looked up (or verified) again on every request, so a revoked or expired key stops working at
once, and any replica with the same JQ_CONSOLE_SECRET serves it. Every POST carries the
session's CSRF token; every answer carries a strict Content-Security-Policy (no inline
script or style).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from jobq.auth.authenticator import Authenticator
from jobq.auth.keys import looks_like_key, split_key
from jobq.auth.principal import Principal, current_principal
from jobq.core import bounds
from jobq.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    JobqError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from jobq.core.model import JobFilter
from jobq.core.schedules import Schedule
from jobq.core.states import TERMINAL_STATES, JobState
from jobq.core.workflows import WorkflowRecord, parent_keys, workflow_state
from jobq.server.authn import authorize
from jobq.server.console.charts import last_hour
from jobq.server.schedules import ScheduleService
from jobq.server.service import JobqService
from jobq.server.workflows import WorkflowService
from jobq.store.base import DeadLetterSelector

HERE = Path(__file__).parent
COOKIE = "jq_console"
SESSION_IDLE = dt.timedelta(hours=8)
ANONYMOUS_IDLE = dt.timedelta(minutes=15)  # a login form left open this long is shown again
CLOCK_SKEW = 60.0  # seconds a cookie signed by another replica may seem to come from ahead
PAGE = 50
CHART_SAMPLE = 500  # newest finished jobs per queue the charts are drawn from
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_JOBS = "/jobq.v1.JobService/"
_ADMIN = "/jobq.v1.AdminService/"
_SCHEDULES = "/jobq.v1.ScheduleService/"
_WORKFLOWS = "/jobq.v1.WorkflowService/"


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    key_id: str | None = None  # logged in with an API key: looked up again on each request
    token: str | None = None  # logged in with a JWT: verified again on each request

    @property
    def logged_in(self) -> bool:
        return self.key_id is not None or self.token is not None


class Sessions:
    """Sessions kept in the browser's cookie, signed with JQ_CONSOLE_SECRET (ADR 0020).

    Every replica with the same secret reads every session, so a login holds behind a load
    balancer and across restarts; nothing is kept in memory, so a flood of visits costs
    none. The cookie names the key, never its secret: the key is looked up on each request,
    so revoking or expiring it ends its sessions at once. The cookie is signed again with
    the time of each answer; one idle longer than SESSION_IDLE (ANONYMOUS_IDLE before login)
    is refused.
    """

    def __init__(self, secret: str) -> None:
        # No secret set: one of this process's own, so sessions last as long as it does.
        self._signer = URLSafeSerializer(
            secret or secrets.token_urlsafe(32), salt="jobq.console.session"
        )

    @staticmethod
    def new(key_id: str | None = None, token: str | None = None) -> Session:
        return Session(secrets.token_urlsafe(32), key_id, token)

    def dump(self, session: Session, now: dt.datetime) -> str:
        data = {"c": session.csrf, "k": session.key_id, "t": session.token, "at": now.timestamp()}
        return str(self._signer.dumps(data))

    def load(self, cookie: str | None, now: dt.datetime) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        csrf, key_id, token, at = data.get("c"), data.get("k"), data.get("t"), data.get("at")
        if not (
            isinstance(csrf, str)
            and isinstance(key_id, str | None)
            and isinstance(token, str | None)
            and isinstance(at, int | float)
        ):
            return None
        session = Session(csrf, key_id, token)
        idle = SESSION_IDLE if session.logged_in else ANONYMOUS_IDLE
        if not -CLOCK_SKEW <= now.timestamp() - at <= idle.total_seconds():
            return None
        return session


Handler = Callable[[web.Request, Principal, Session], Awaitable[web.StreamResponse]]


class Console:
    def __init__(
        self,
        service: JobqService,
        schedules: ScheduleService,
        workflows: WorkflowService,
        authenticator: Authenticator,
        secret: str = "",
    ) -> None:
        self.service = service
        self.schedules = schedules
        self.workflows = workflows
        self.authenticator = authenticator
        self.sessions = Sessions(secret)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["json"] = _json

    # --- plumbing ---------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        body = self.templates.get_template(name).render(**context)
        return web.Response(text=body, status=status, content_type="text/html")

    def _session(self, request: web.Request) -> Session | None:
        return self.sessions.load(request.cookies.get(COOKIE), self.service.clock.now())

    def _ensure(self, request: web.Request) -> Session:
        """The request's session, or a new one not logged in (it carries the CSRF token)."""
        return self._session(request) or self.sessions.new()

    def _set_cookie(
        self, request: web.Request, response: web.StreamResponse, session: Session
    ) -> None:
        # Secure when the browser came over TLS, directly or through the load balancer
        # (which says so in X-Forwarded-Proto); a client forging the header only makes
        # its own cookie stricter.
        tls = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
        value = self.sessions.dump(session, self.service.clock.now())
        response.set_cookie(COOKIE, value, httponly=True, samesite="Strict", path="/", secure=tls)

    async def _principal(self, session: Session) -> Principal:
        now = self.service.clock.now()
        if session.key_id is not None:
            return await self.authenticator.key_principal(session.key_id, now)
        metadata = [("authorization", f"Bearer {session.token}")] if session.token else []
        return await self.authenticator.authenticate(metadata, None, now)

    def page(self, method: str, action: bool = False) -> Callable[[Handler], Any]:
        """A route standing for RPC `method`: authenticated, authorized, CSRF-checked."""

        def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            async def serve(request: web.Request) -> web.StreamResponse:
                session = self._ensure(request)
                try:
                    principal = await self._principal(session)
                except Unauthenticated:
                    response: web.StreamResponse = _see_other("/login")
                    self._set_cookie(request, response, self.sessions.new())
                    return response
                if action:
                    form = await request.post()
                    token = str(form.get("csrf", ""))
                    if not hmac.compare_digest(token, session.csrf):
                        return self.render(
                            "error.html",
                            403,
                            **self._base(session, principal),
                            message="The form is stale: reload the page.",
                        )
                reset = current_principal.set(principal)
                try:
                    authorize(method, principal, None)
                    response = await handler(request, principal, session)
                except (PermissionDenied, Unauthenticated) as exc:
                    response = self.render(
                        "error.html", 403, **self._base(session, principal), message=str(exc)
                    )
                except NotFound as exc:
                    response = self.render(
                        "error.html", 404, **self._base(session, principal), message=str(exc)
                    )
                except (InvalidArgument, FailedPrecondition) as exc:
                    response = self.render(
                        "error.html", 400, **self._base(session, principal), message=str(exc)
                    )
                finally:
                    current_principal.reset(reset)
                self._set_cookie(request, response, session)
                return response

            return serve

        return wrap

    def _base(self, session: Session, principal: Principal | None) -> dict[str, Any]:
        return {"csrf": session.csrf, "who": principal, "logged_in": session.logged_in}

    # --- login ------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        session = self._ensure(request)
        response = self.render("login.html", csrf=session.csrf, who=None, logged_in=False, error="")
        self._set_cookie(request, response, session)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        form = await request.post()
        if session is None or not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
            return _see_other("/login")
        credential = str(form.get("key", "")).strip()
        try:
            await self.authenticator.authenticate(
                [("authorization", f"Bearer {credential}")], None, self.service.clock.now()
            )
        except JobqError as exc:
            return self.render(
                "login.html",
                401,
                csrf=session.csrf,
                who=None,
                logged_in=False,
                error=f"Not accepted: {exc}",
            )
        # The cookie names the key, never its secret; a JWT is kept whole (it is verified
        # again on each request, and expires on its own). A new CSRF token at login.
        parts = split_key(credential) if looks_like_key(credential) else None
        if parts is not None:
            new = self.sessions.new(key_id=parts[0])
        else:
            new = self.sessions.new(token=credential)
        response = _see_other("/queues")
        self._set_cookie(request, response, new)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = self._session(request)
        form = await request.post()
        response = _see_other("/login")
        if session is not None and hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
            self._set_cookie(request, response, self.sessions.new())
        return response

    # --- pages ------------------------------------------------------------------------------

    async def queues(self, request: web.Request, who: Principal, session: Session) -> web.Response:
        # Unfinished states only: a million finished jobs cost this page nothing.
        stats = await self.service.queue_stats(None, "", finished=False)
        now = self.service.clock.now()
        rows = []
        for s in stats:
            flt = JobFilter(queue=s.queue, states=(JobState.SUCCEEDED,), tenant=s.tenant)
            sample = await self.service.list_jobs(flt, CHART_SAMPLE, "")
            throughput, latency = last_hour(sample.jobs, now)
            rows.append({"stats": s, "throughput": throughput, "latency": latency})
        return self.render(
            "queues.html",
            **self._base(session, who),
            rows=rows,
            states=[s.value for s in JobState if s not in TERMINAL_STATES],
        )

    async def queue_action(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        paused = request.path.endswith("/pause")
        tenant, name = request.match_info["tenant"], request.match_info["name"]
        await self.service.update_queue(name, {"paused": paused}, tenant)
        return _see_other("/queues")

    async def jobs(self, request: web.Request, who: Principal, session: Session) -> web.Response:
        q = request.query
        search = q.get("q", "").strip()
        if search and bounds.is_job_id(search):
            raise web.HTTPSeeOther(f"/jobs/{search}")
        state = q.get("state", "")
        states = (JobState(state),) if state in {s.value for s in JobState} else ()
        flt = JobFilter(queue=q.get("queue") or None, states=states, type=q.get("type") or None)
        page = await self.service.list_jobs(flt, PAGE, q.get("after", ""))
        return self.render(
            "jobs.html",
            **self._base(session, who),
            jobs=page.jobs,
            after=page.next_after or "",
            query=dict(q),
            states=[s.value for s in JobState],
        )

    async def job(self, request: web.Request, who: Principal, session: Session) -> web.Response:
        job = await self.service.get(request.match_info["id"])
        events = await self.service.job_events(job.id)
        return self.render(
            "job.html",
            **self._base(session, who),
            job=job,
            events=events,
            live=job.state not in TERMINAL_STATES,
        )

    async def job_live(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.Response:
        job = await self.service.get(request.match_info["id"])
        return self.render("job_live.html", job=job, live=job.state not in TERMINAL_STATES)

    async def cancel(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        job = await self.service.cancel(request.match_info["id"], "cancelled from the console")
        return _see_other(f"/jobs/{job.id}")

    async def dead(self, request: web.Request, who: Principal, session: Session) -> web.Response:
        q = request.query
        page = await self.service.list_dead(q.get("queue", ""), PAGE, q.get("after", ""))
        return self.render(
            "dead.html",
            **self._base(session, who),
            jobs=page.jobs,
            after=page.next_after or "",
            queue=q.get("queue", ""),
        )

    async def replay(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        ids = tuple(str(v) for v in (await request.post()).getall("id", []))
        if not ids:
            raise InvalidArgument("id", "choose at least one dead job")
        await self.service.replay_dead(DeadLetterSelector(ids=ids))
        return _see_other("/dead")

    async def discard(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        form = await request.post()
        ids = tuple(str(v) for v in form.getall("id", []))
        if not ids:
            raise InvalidArgument("id", "choose at least one dead job")
        if form.get("confirmed") != "yes":  # a page that says what will go, and asks
            return self.render("confirm.html", **self._base(session, who), ids=ids)
        await self.service.discard_dead(DeadLetterSelector(ids=ids))
        return _see_other("/dead")

    async def workers(self, request: web.Request, who: Principal, session: Session) -> web.Response:
        workers = await self.service.list_workers()
        return self.render("workers.html", **self._base(session, who), workers=workers)

    async def schedules_page(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.Response:
        # Each row's last run comes with its view: schedules are set up by operators, a
        # handful per tenant, not a table that grows with traffic.
        views = [await self.schedules.get(s.name, s.tenant) for s in await self.schedules.list("")]
        return self.render(
            "schedules.html", **self._base(session, who), views=views, calendar=_calendar
        )

    async def schedule_page(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.Response:
        view = await self.schedules.get(request.match_info["name"], request.match_info["tenant"])
        return self.render(
            "schedule.html", **self._base(session, who), view=view, calendar=_calendar
        )

    async def schedule_action(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        tenant, name = request.match_info["tenant"], request.match_info["name"]
        action = request.path.rpartition("/")[2]
        if action == "pause":
            schedule = await self.schedules.pause(name, tenant)
        elif action == "resume":
            schedule = await self.schedules.resume(name, tenant)
        else:
            run = await self.schedules.trigger(name, tenant)
            return _see_other(f"/jobs/{run.job_id}")
        return _see_other(f"/schedules/{schedule.tenant}/{schedule.name}")

    async def workflows_page(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        # No list: the store has no page of workflows, so one is found by its id (or from
        # one of its jobs' pages).
        search = request.query.get("id", "").strip()
        if search:
            record = await self.workflows.get(search)  # NotFound: the error page says so
            return _see_other(f"/workflows/{record.workflow.id}")
        return self.render("workflows.html", **self._base(session, who))

    async def workflow_page(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.Response:
        record = await self.workflows.get(request.match_info["id"])
        return self.render(
            "workflow.html",
            **self._base(session, who),
            **_workflow_view(record),
            may_cancel=_may(_WORKFLOWS + "CancelWorkflow", who),
        )

    async def workflow_live(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.Response:
        record = await self.workflows.get(request.match_info["id"])
        return self.render("workflow_live.html", **_workflow_view(record))

    async def workflow_cancel(
        self, request: web.Request, who: Principal, session: Session
    ) -> web.StreamResponse:
        record = await self.workflows.get(request.match_info["id"])
        if (await request.post()).get("confirmed") != "yes":  # say what will stop, and ask
            return self.render(
                "workflow_confirm.html",
                **self._base(session, who),
                **_workflow_view(record),
            )
        await self.workflows.cancel(record.workflow.id, "cancelled from the console")
        return _see_other(f"/workflows/{record.workflow.id}")


def _may(method: str, who: Principal) -> bool:
    """Whether `who` may call `method`, so a page offers only the actions it may take."""
    try:
        authorize(method, who, None)
    except PermissionDenied:
        return False
    return True


def _workflow_view(record: WorkflowRecord) -> dict[str, Any]:
    parents = parent_keys(record)
    states = [job.state for job in record.jobs]
    counts = {s.value: n for s in JobState if (n := states.count(s))}
    return {
        "workflow": record.workflow,
        "nodes": [(job, parents.get(job.id, [])) for job in record.jobs],
        "state": workflow_state(states),
        "counts": counts,
        "unfinished": [job for job in record.jobs if job.state not in TERMINAL_STATES],
        "live": any(s not in TERMINAL_STATES for s in states),
    }


def _calendar(schedule: Schedule) -> str:
    if schedule.cron:
        return f"cron {schedule.cron} ({schedule.time_zone})"
    seconds = schedule.interval.total_seconds() if schedule.interval else 0
    return f"every {seconds:g} s"


def _see_other(to: str) -> web.Response:
    # Returned, not raised: aiohttp deprecates returning its HTTPException objects.
    return web.Response(status=303, headers={"Location": to})


def _when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _json(value: str | None) -> str:
    if not value:
        return ""
    try:
        return json.dumps(json.loads(value), indent=2)
    except ValueError:
        return value


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a raised redirect or 404 gets the same headers
        _secure(exc)
        raise
    _secure(response)
    return response


def _secure(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if response.content_type == "text/html":
        response.headers["Cache-Control"] = "no-store"


def add_console(
    app: web.Application,
    service: JobqService,
    schedules: ScheduleService,
    workflows: WorkflowService,
    authenticator: Authenticator,
    secret: str = "",
) -> None:
    """`secret`: JQ_CONSOLE_SECRET, which signs the session cookies."""
    console = Console(service, schedules, workflows, authenticator, secret)
    app.middlewares.append(_headers)
    r = app.router
    r.add_get("/", _home)
    r.add_get("/login", console.login_form)
    r.add_post("/login", console.login)
    r.add_post("/logout", console.logout)
    r.add_get("/queues", console.page(_ADMIN + "GetQueueStats")(console.queues))
    r.add_post(
        "/queues/{tenant}/{name}/pause",
        console.page(_ADMIN + "PauseQueue", action=True)(console.queue_action),
    )
    r.add_post(
        "/queues/{tenant}/{name}/resume",
        console.page(_ADMIN + "ResumeQueue", action=True)(console.queue_action),
    )
    r.add_get("/jobs", console.page(_JOBS + "ListJobs")(console.jobs))
    r.add_get("/jobs/{id}", console.page(_JOBS + "GetJob")(console.job))
    r.add_get("/jobs/{id}/live", console.page(_JOBS + "GetJob")(console.job_live))
    r.add_post("/jobs/{id}/cancel", console.page(_JOBS + "CancelJob", action=True)(console.cancel))
    r.add_get("/dead", console.page(_ADMIN + "ListDeadLetters")(console.dead))
    r.add_post(
        "/dead/replay", console.page(_ADMIN + "ReplayDeadLetters", action=True)(console.replay)
    )
    r.add_post(
        "/dead/discard", console.page(_ADMIN + "DiscardDeadLetters", action=True)(console.discard)
    )
    r.add_get("/workers", console.page(_ADMIN + "ListWorkers")(console.workers))
    r.add_get("/schedules", console.page(_SCHEDULES + "ListSchedules")(console.schedules_page))
    r.add_get(
        "/schedules/{tenant}/{name}",
        console.page(_SCHEDULES + "GetSchedule")(console.schedule_page),
    )
    for action, rpc in (
        ("pause", "PauseSchedule"),
        ("resume", "ResumeSchedule"),
        ("trigger", "TriggerSchedule"),
    ):
        r.add_post(
            f"/schedules/{{tenant}}/{{name}}/{action}",
            console.page(_SCHEDULES + rpc, action=True)(console.schedule_action),
        )
    r.add_get("/workflows", console.page(_WORKFLOWS + "GetWorkflow")(console.workflows_page))
    r.add_get("/workflows/{id}", console.page(_WORKFLOWS + "GetWorkflow")(console.workflow_page))
    r.add_get(
        "/workflows/{id}/live", console.page(_WORKFLOWS + "GetWorkflow")(console.workflow_live)
    )
    r.add_post(
        "/workflows/{id}/cancel",
        console.page(_WORKFLOWS + "CancelWorkflow", action=True)(console.workflow_cancel),
    )
    r.add_static("/static", HERE / "static", append_version=False)


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/queues")
