"""The API keys every test harness runs with: one per role, and an owner key for in-process
tests that call both job and admin RPCs. Servers get them from JQ_AUTH_BOOTSTRAP_KEYS
(BOOTSTRAP_KEYS); clients, workers and jq-ctl send them as JQ_TOKEN."""

from __future__ import annotations

import json

from jobq.auth.principal import Role


def _key(n: int) -> str:
    return f"jq_{n:016x}_{'test-secret-of-key-'}{n:024d}"


SUBMITTER_KEY = _key(1)
WORKER_KEY = _key(2)
OPERATOR_KEY = _key(3)
ADMIN_KEY = _key(4)
# Submit and steer queues in one in-process test; never a worker.
OWNER_KEY = _key(5)
# Every role: for the tests that call every RPC with bad input, which are not about access.
EVERY_ROLE_KEY = _key(6)
# Read-only (the console's viewers): pages render, actions are refused.
VIEWER_KEY = _key(7)

KEY_FOR_ROLE = {
    Role.SUBMITTER: SUBMITTER_KEY,
    Role.WORKER: WORKER_KEY,
    Role.OPERATOR: OPERATOR_KEY,
    Role.ADMIN: ADMIN_KEY,
}

BOOTSTRAP_KEYS = json.dumps(
    [
        {"key": SUBMITTER_KEY, "tenant": "*", "roles": ["submitter"]},
        {"key": WORKER_KEY, "tenant": "*", "roles": ["worker"]},
        {"key": OPERATOR_KEY, "tenant": "*", "roles": ["operator"]},
        {"key": ADMIN_KEY, "tenant": "*", "roles": ["admin"]},
        {"key": OWNER_KEY, "tenant": "*", "roles": ["submitter", "operator", "admin"]},
        {"key": EVERY_ROLE_KEY, "tenant": "*", "roles": [r.value for r in Role]},
        {"key": VIEWER_KEY, "tenant": "*", "roles": ["viewer"]},
    ]
)

# The command groups of jq-ctl and the role each needs.
CTL_ROLE = {
    "submit": Role.SUBMITTER,
    "submit-many": Role.SUBMITTER,
    "get": Role.SUBMITTER,
    "list": Role.SUBMITTER,
    "cancel": Role.SUBMITTER,
    "watch": Role.SUBMITTER,
    "stats": Role.OPERATOR,
    "queues": Role.OPERATOR,
    "workers": Role.OPERATOR,
    "dlq": Role.OPERATOR,
    "keys": Role.ADMIN,
    "schedules": Role.OPERATOR,
}
