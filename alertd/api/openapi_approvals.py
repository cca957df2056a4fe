"""The OpenAPI description of four-eyes (alertd/api/staff_approvals.py): held orders, their
approval and rejection. The held answers of issue and amend are in openapi_staff."""

from __future__ import annotations

from typing import Any

from alertd import approvals
from alertd.api.openapi_common import (
    PATH,
    TIMESTAMP,
    UUID,
    Schema,
    answer,
    array,
    integer,
    json_content,
    nullable,
    obj,
    operation,
    path_param,
    ref,
    string,
)

TAG = "staff: orders"
_WHO = nullable(UUID)

SCHEMAS: dict[str, Schema] = {
    "OrderHeld": obj({
        "id": {**UUID, "description": "the order's id (for an issue: the id it will have)"},
        "state": {"const": approvals.PENDING},
        "version": {**integer(minimum=1), "description": "a change: the version it was "
                                                         "asked on"},
        "devices": ref("CoarseCount"),
        "by_area": {"type": "object", "additionalProperties": ref("CoarseCount")},
        "reasons": array(string(), minItems=1,
                         description="why it waits: a held level, more devices than allowed"),
    }, optional={"version"}, description="Held for a second operator's approval: nothing is "
                                         "sent until then."),
    "PendingOrder": obj({
        "id": UUID,
        "state": string(enum=[approvals.PENDING, *approvals.DECISIONS]),
        "kind": string(enum=list(approvals.KINDS),
                       description="issue: a new order; amend: a change of an order"),
        "version": {**nullable(integer(minimum=1)),
                    "description": "amend: the version it was asked on"},
        "level": ref("Level"), "hazard": ref("Hazard"),
        "area": {"type": "object", "description": "the area asked for, as stored"},
        "headline": {"type": "object", "additionalProperties": string()},
        "expires_at": TIMESTAMP, "expired": {"type": "boolean"},
        "devices": ref("CoarseCount"),
        "by_area": {"type": "object", "additionalProperties": ref("CoarseCount")},
        "reasons": array(string()),
        "requested_by": UUID, "requested_label": string(), "requested_at": TIMESTAMP,
        "decided_by": _WHO, "decided_label": nullable(string()),
        "decided_at": nullable(TIMESTAMP), "decision_reason": nullable(string()),
    }, description="An order, or a change of one, held for approval (or rejected): what "
                   "was asked, by whom, and the numbers its preview showed."),
}

_ORDER = path_param("order_id", UUID, "the order's id, as the 202 named it")

def _op(operation_id: str, summary: str, answers: dict[str, Schema], description: str,
        **kwargs: Any) -> Schema:
    return operation(operation_id, summary, tag=TAG, security="staff", role="operator",
                     errors=(*PATH, "409"), answers=answers, description=description,
                     **kwargs)

PATHS: dict[str, Schema] = {
    "/v1/staff/orders/{order_id}/approve": {
        "parameters": [_ORDER],
        "post": _op(
            "approveOrder", "Approve a held order or change (a second operator)",
            {"200": answer("Applied: the answer the request would have had (an issue's "
                           "{id, version, devices}; a change's, with notified).",
                           {"anyOf": [ref("OrderCreated"), ref("OrderAmended")]})},
            "403 for the staff token that asked for it (four-eyes) and for a viewer; 404 "
            "when there is no such order; 409 when nothing of it waits, the request was "
            "decided already or the order was lifted meanwhile; 422 when the request no "
            "longer holds (it is validated again: an expiry now past), nothing sent.")},
    "/v1/staff/orders/{order_id}/reject": {
        "parameters": [_ORDER],
        "post": _op(
            "rejectOrder", "Reject a held order or change; nothing is sent",
            {"200": answer("Rejected (kept as history).", obj({
                "id": UUID, "state": {"const": "rejected"}}))},
            "Any operator, the one who asked included (withdrawing it). 404 when there is no "
            "such order; 409 when nothing of it waits or it was decided already.",
            body={"required": False, "content": json_content(obj(
                {"reason": string(maxLength=approvals.MAX_REASON)}, optional={"reason"}),
                {"reason": "wrong municipality"})})},
}
