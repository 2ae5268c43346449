"""Alert rules (CRUD) and alerts (list, one, acknowledge / resolve / close / note).

Rules: validated (the body's shape, then :class:`models.records.AlertRule`'s checks, then each
channel with :func:`agents.channels.parse_channel`; a bad rule is a 422 naming the field), stored
in ``alert_rules`` and published to the compacted ``alert-rules`` topic before the transaction
commits, like camera configs: the workers apply it at their next evaluation.

Alerts: the agents' lifecycle writer owns each alert's state. A person's action is checked here
against the stored status (:func:`core.alerting.next_status`: 409 if the alert cannot take it)
and published to ``alert-events``; the answer is 202 with the status the alert moves to, and the
alerts table shows it once the sink has written it (about a second).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, create_model

from agents.channels import parse_channel
from api import queries
from api.auth import Admin, Operator, require
from api.deps import Conn, audit, utcnow
from api.schemas import ID_PATTERN, Text
from core import alerting as core
from core.principals import Principal
from models.base import SchemaError, parse
from models.records import AlertEvent, AlertRule

router = APIRouter(prefix="/api/v1", tags=["alerts"])

RuleId = Path(pattern=ID_PATTERN, description="alert rule id", examples=["camera_offline"])
AlertId = Path(max_length=300, description="alert id (rule|camera[/zone]@ms)")

# The body of a rule: AlertRule's fields (so a field added there is accepted here), bounded.
_BOUNDED = {"threshold", "resolve_threshold", "for_s", "eval_interval_s", "cooldown_s", "escalation_delay_s"}
_SKIP = {"rule_id", "updated_at", "schema_version"}


def _field(name: str, tp: Any, default: Any) -> tuple[Any, Any]:
    extra: dict[str, Any] = {}
    if name in _BOUNDED:
        extra = {"ge": -1e12, "le": 1e12}
    elif name in ("name", "description", "message"):
        extra = {"max_length": 500}
    elif name in ("channels", "escalation_channels"):
        extra = {"max_length": 20}
    if isinstance(default, list):
        return tp, Field(default_factory=list, **extra)
    return tp, Field(default, **extra)


_fields = AlertRule._options.fields
_defaults = AlertRule._options.defaults
RuleBody = create_model(
    "AlertRuleBody",
    __config__=ConfigDict(extra="forbid"),
    **{n: _field(n, tp, _defaults.get(n, ...)) for n, tp in _fields.items() if n not in _SKIP},
)
RuleIn = create_model("AlertRuleIn", __base__=RuleBody, rule_id=(str, Field(pattern=ID_PATTERN)))


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: Text = Field("api", min_length=1, description="who acts (recorded in the alert's log)")
    note: Text | None = None


def _rule(rule_id: str, body: BaseModel, principal: Principal) -> AlertRule:
    data = body.model_dump(exclude={"rule_id"})
    data.update(rule_id=rule_id, updated_at=time.time())
    if "tenant" not in body.model_fields_set and principal.role != "superadmin":
        data["tenant"] = principal.tenant
    if not principal.may_act_in(data["tenant"]):
        raise HTTPException(403, f"tenant: {principal.actor} cannot write rules of tenant {data['tenant']!r}")
    rule = parse(AlertRule, data)
    for field in ("channels", "escalation_channels"):
        for i, spec in enumerate(getattr(rule, field)):
            try:
                parse_channel(spec)
            except ValueError as exc:
                raise SchemaError("AlertRule", f"{field}[{i}]", str(exc)) from None
    return rule


def _view(rule: AlertRule) -> dict[str, Any]:
    return json.loads(rule.to_json())


async def _store(request: Request, conn: Conn, rule: AlertRule) -> bool:
    """Upsert the rule, audit and publish it before committing; returns True if created."""
    async with conn.transaction():
        before = await _stored_rule(conn, rule.rule_id)
        cur = await conn.execute(
            "INSERT INTO alert_rules (rule_id, tenant_id, metric, active, spec) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (rule_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, metric = EXCLUDED.metric, "
            "active = EXCLUDED.active, spec = EXCLUDED.spec RETURNING (xmax = 0) AS created",
            (rule.rule_id, rule.tenant, rule.metric, rule.active, rule.to_json().decode()),
        )
        created = bool((await cur.fetchone())["created"])
        action = "alert_rule.create" if created else "alert_rule.update"
        await audit(request, conn, action, "alert_rule", rule.rule_id, before, _view(rule), tenant=rule.tenant)
        await asyncio.to_thread(request.app.state.publisher.publish, rule.rule_id, rule.to_json(), "alert-rules")
    return created


async def load_rules(conn: Conn, tenant: str | None = None) -> list[AlertRule]:
    where, params = ("WHERE tenant_id = %s", (tenant,)) if tenant else ("", ())
    cur = await conn.execute(f"SELECT rule_id, spec FROM alert_rules {where} ORDER BY rule_id", params)
    rows = await cur.fetchall()
    out = []
    for r in rows:
        spec = r["spec"] if isinstance(r["spec"], dict) else json.loads(r["spec"])
        out.append(parse(AlertRule, {**spec, "rule_id": r["rule_id"]}))
    return out


async def _stored_rule(conn: Conn, rule_id: str) -> dict[str, Any] | None:
    cur = await conn.execute("SELECT spec FROM alert_rules WHERE rule_id = %s", (rule_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    return row["spec"] if isinstance(row["spec"], dict) else json.loads(row["spec"])


@router.get("/alert-rules", summary="Alert rules (operator: channels may hold webhook URLs)")
async def list_rules(
    conn: Conn,
    _p: Operator,
    tenant: str | None = Query(None, pattern=ID_PATTERN),
    metric: str | None = Query(None, description="one of: " + ", ".join(core.METRICS)),
) -> dict[str, Any]:
    rules = [r for r in await load_rules(conn, tenant) if metric is None or r.metric == metric]
    return {"rules": [_view(r) for r in rules], "metrics": {k: v[1] for k, v in core.METRICS.items()}}


@router.get("/alert-rules/{rule_id}", summary="One alert rule (operator)")
async def get_rule(conn: Conn, _p: Operator, rule_id: str = RuleId) -> dict[str, Any]:
    cur = await conn.execute("SELECT rule_id, spec FROM alert_rules WHERE rule_id = %s", (rule_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"unknown alert rule {rule_id!r}")
    spec = row["spec"] if isinstance(row["spec"], dict) else json.loads(row["spec"])
    return _view(parse(AlertRule, {**spec, "rule_id": rule_id}))


@router.post("/alert-rules", status_code=status.HTTP_201_CREATED, summary="Create an alert rule (admin)")
async def create_rule(request: Request, conn: Conn, body: RuleIn, principal: Admin) -> dict[str, Any]:  # type: ignore[valid-type]
    rule = _rule(body.rule_id, body, principal)
    cur = await conn.execute("SELECT 1 FROM alert_rules WHERE rule_id = %s", (rule.rule_id,))
    if await cur.fetchone() is not None:
        msg = f"alert rule {rule.rule_id!r} exists: PUT /api/v1/alert-rules/{rule.rule_id} replaces it"
        raise HTTPException(409, msg)
    await _store(request, conn, rule)
    return _view(rule)


@router.put("/alert-rules/{rule_id}", summary="Create or replace an alert rule (admin)")
async def put_rule(
    request: Request,
    response: Response,
    conn: Conn,
    body: RuleBody,  # type: ignore[valid-type]
    principal: Admin,
    rule_id: str = RuleId,
) -> dict[str, Any]:
    rule = _rule(rule_id, body, principal)
    created = await _store(request, conn, rule)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return _view(rule)


@router.delete("/alert-rules/{rule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an alert rule (admin)")
async def delete_rule(request: Request, conn: Conn, _p: Admin, rule_id: str = RuleId) -> Response:
    """Removes the rule and publishes a tombstone; the workers resolve its open alerts."""
    async with conn.transaction():
        before = await _stored_rule(conn, rule_id)
        cur = await conn.execute("DELETE FROM alert_rules WHERE rule_id = %s RETURNING rule_id, tenant_id", (rule_id,))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, f"unknown alert rule {rule_id!r}")
        await audit(request, conn, "alert_rule.delete", "alert_rule", rule_id, before, None, tenant=row["tenant_id"])
        await asyncio.to_thread(request.app.state.publisher.publish, rule_id, None, "alert-rules")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ----------------------------------------------------------------------------- alerts


@router.get("/alerts", summary="Alerts, newest first")
async def alerts(
    conn: Conn,
    severity: Literal["info", "warning", "error", "critical"] | None = None,
    status: Literal["active", "acknowledged", "resolved", "closed"] | None = None,
    camera_id: str | None = Query(None, pattern=ID_PATTERN),
    rule: str | None = Query(None, pattern=ID_PATTERN),
    tenant: str | None = Query(None, pattern=ID_PATTERN),
    time_range: str = Query("7d", alias="timeRange", description="triggered within this far back"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    since = utcnow() - queries.parse_duration(time_range, "timeRange")
    filters = {"severity": severity, "status": status, "camera_id": camera_id, "rule": rule, "tenant_id": tenant}
    sql = queries.alerts_sql([k for k, v in filters.items() if v is not None])
    rows = await (await conn.execute(sql, {"since": since, "limit": limit, **filters})).fetchall()
    return {"alerts": [queries.alert_view(r) for r in rows]}


async def _alert_row(conn: Conn, alert_id: str) -> dict[str, Any]:
    cur = await conn.execute(queries.ALERT_BY_ID, (alert_id,))
    row = await cur.fetchone()
    if row is None:
        raise HTTPException(404, f"unknown alert {alert_id!r}")
    return row


@router.get("/alerts/{alert_id}", summary="One alert with its resolution log")
async def get_alert(conn: Conn, alert_id: str = AlertId) -> dict[str, Any]:
    return queries.alert_view(await _alert_row(conn, alert_id))


async def _act(request: Request, conn: Conn, alert_id: str, action: str, body: ActionBody) -> dict[str, Any]:
    row = await _alert_row(conn, alert_id)
    try:
        new_status, _changed = core.next_status(row["status"], action)
    except core.LifecycleError as exc:
        raise HTTPException(409, f"alert {alert_id!r}: {exc}") from None
    event = AlertEvent(alert_id=alert_id, kind=action, at=time.time(), by=body.by, note=body.note)
    change = {"status": new_status, "by": body.by, "note": body.note}
    await audit(request, conn, f"alert.{action}", "alert", alert_id, {"status": row["status"]}, change,
                tenant=row["tenant_id"])  # fmt: skip
    await asyncio.to_thread(request.app.state.publisher.publish, alert_id, event.to_json(), "alert-events")
    return {"alert_id": alert_id, "action": action, "status": new_status, "accepted": True}


ACCEPTED = {"status_code": status.HTTP_202_ACCEPTED, "dependencies": [Depends(require("operator"))]}


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge an active alert", **ACCEPTED)
async def acknowledge(request: Request, conn: Conn, body: ActionBody, alert_id: str = AlertId) -> dict[str, Any]:
    return await _act(request, conn, alert_id, "acknowledge", body)


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an alert by hand", **ACCEPTED)
async def resolve(request: Request, conn: Conn, body: ActionBody, alert_id: str = AlertId) -> dict[str, Any]:
    return await _act(request, conn, alert_id, "resolve", body)


@router.post("/alerts/{alert_id}/close", summary="Close a resolved alert", **ACCEPTED)
async def close(request: Request, conn: Conn, body: ActionBody, alert_id: str = AlertId) -> dict[str, Any]:
    return await _act(request, conn, alert_id, "close", body)


@router.post("/alerts/{alert_id}/notes", summary="Add a note to an alert's log", **ACCEPTED)
async def note(request: Request, conn: Conn, body: ActionBody, alert_id: str = AlertId) -> dict[str, Any]:
    return await _act(request, conn, alert_id, "note", body)
