"""The OpenAPI description of the audit trail (alertd/api/auditing.py)."""

from __future__ import annotations

from alertd import audit
from alertd.api.openapi_common import (
    TIMESTAMP,
    UUID,
    Schema,
    answer,
    array,
    integer,
    nullable,
    obj,
    operation,
    query_param,
    ref,
    string,
)

TAG = "staff: audit"

SCHEMAS: dict[str, Schema] = {
    "AuditEntry": obj({
        "id": integer(minimum=1),
        "at": TIMESTAMP,
        "staff_id": {**nullable(UUID), "description": "the staff token acting (null: none "
                                                      "known, e.g. a sign-in with a bad token)"},
        "staff_label": string(), "staff_role": string(),
        "via": string("how the caller came: a bearer token (api), a console session "
                      "(console), the command line (cli)", enum=list(audit.VIA)),
        "remote": string("the client's address (an IPv6 one as its /64)"),
        "action": string("order.issue, order.amend, order.lift, order.approve, "
                         "order.reject, shelter.status, cap.post, tip.send, "
                         "session.sign_in, session.sign_out, token.create, token.revoke, ..."),
        "target": {**nullable(string()), "description": "what was acted on: an order's, a "
                                                        "shelter's, a device's id"},
        "status": integer("the HTTP status answered (a refused attempt is kept too); 0 "
                          "for the command line"),
        "before": {"description": "the state before (null: none)"},
        "after": {"description": "the state after, or {\"error\": reason} when refused"},
    }),
}

PATHS: dict[str, Schema] = {
    "/v1/staff/audit": {"get": operation(
        "listAudit", "The audit trail of staff actions, newest first", tag=TAG,
        security="staff", role="admin", errors=(),
        parameters=[
            query_param("action", string(), "only this action (e.g. order.issue)"),
            query_param("target", string(), "only entries about this (e.g. an order id)"),
            query_param("staff_id", UUID, "only this staff token's entries"),
            query_param("since", TIMESTAMP, "only entries at or after this time"),
            query_param("before", integer(minimum=1, maximum=2**62),
                        "only ids below it (the previous page's `next`)"),
            query_param("limit", integer(minimum=1, maximum=audit.MAX_LIMIT, default=100),
                        "at most"),
        ],
        answers={"200": answer("The entries; `next` is the `before` of the next page (null: "
                               "this is the last).", obj({
                                   "entries": array(ref("AuditEntry")),
                                   "next": nullable(integer(minimum=1))}))},
        description="The trail is append-only: no database role may change or delete an "
                    "entry (a trigger refuses UPDATE, DELETE and TRUNCATE).")},
}
