"""Restore requests in Redis, changed only by atomic compare-and-set on a revision number.

Keys under the configured prefix ``P``::

    P:approval:<request id>   hash: rev (an integer), state, doc (the request as JSON)
    P:approvals               sorted set of request ids by creation time (recent requests)
    P:approvals:open          set of ids still needing attention: pending, or break-glass
                              awaiting review (what the expiry sweep and the reminder read)
    P:approvals:op:<op id>    the request id an operation carries out

Every change reads the request and its revision, applies a pure transition from
``workers.core.approvals``, and writes back only if the revision is still the one it read;
otherwise it reads again and re-decides. So two clicks, a Slack retry, two bot replicas or
two workers racing on one request serialize: the second sees the first's result and is
refused by the rules, never applied twice. The HMAC key never comes here, only signatures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import redis
from pydantic import ValidationError

from workers.core.approvals import ApprovalRequest, RequestState, expire_if_due
from workers.core.errors import ConflictError, IntegrityError, NotFoundError, StorageUnavailable

MAX_ATTEMPTS = 100
RECENT_KEPT = 5000
OP_LINK_TTL = timedelta(days=30)

# KEYS: request, recent index, open set. ARGV: expected rev ("" = must not exist), new rev,
# doc, state, open flag ("1"/"0"), id, created score.
_CAS = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if ARGV[1] == '' then
  if rev then return 0 end
elseif rev ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'doc', ARGV[3], 'state', ARGV[4])
if ARGV[5] == '1' then redis.call('SADD', KEYS[3], ARGV[6])
else redis.call('SREM', KEYS[3], ARGV[6]) end
if ARGV[1] == '' then redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6]) end
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open(request: ApprovalRequest) -> bool:
    return request.state == RequestState.PENDING or request.awaiting_review


class ApprovalStore:
    """Restore requests by id; every write is a compare-and-set."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._cas = client.register_script(_CAS)

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return ":".join((self.prefix, *parts))

    def create(self, request: ApprovalRequest) -> ApprovalRequest:
        """Store a new request; ConflictError if its id is taken."""
        if not self._write(request, expected=None):
            raise ConflictError(f"restore request {request.id} already exists")
        return request

    def get(self, request_id: str) -> ApprovalRequest:
        """The request; NotFoundError when there is none."""
        return self._read(request_id)[0]

    def find(self, request_id: str) -> ApprovalRequest | None:
        """The request, or None."""
        try:
            return self.get(request_id)
        except NotFoundError:
            return None

    def update(
        self, request_id: str, change: Callable[[ApprovalRequest], ApprovalRequest]
    ) -> tuple[ApprovalRequest, ApprovalRequest]:
        """Apply ``change`` atomically; return (before, after). ``change`` may raise to refuse.

        ``change`` must be pure: on a lost race it runs again on the newer request.
        Returning the very object it was given writes nothing.
        """
        for _ in range(MAX_ATTEMPTS):
            before, rev = self._read(request_id)
            after = change(before)
            if after is before or after == before:
                return before, before
            if after.id != before.id:
                raise IntegrityError("a request's id cannot change")
            if self._write(after, expected=rev):
                return before, after
        raise ConflictError(
            f"restore request {request_id} is changing too fast", hint="try again in a moment"
        )

    def link_operation(self, op_id: str, request_id: str) -> None:
        """Remember which request ``op_id`` carries out (for the final card)."""
        self._call(self.client.set, self.key("approvals", "op", op_id), request_id, ex=OP_LINK_TTL)

    def for_operation(self, op_id: str) -> ApprovalRequest | None:
        """The request that operation ``op_id`` carries out, if any."""
        found = self._call(self.client.get, self.key("approvals", "op", op_id))
        return self.find(_text(found)) if found else None

    def recent(self, limit: int = 20) -> list[ApprovalRequest]:
        """The newest requests first."""
        ids = self._call(self.client.zrevrange, self.key("approvals"), 0, max(0, limit - 1))
        return [r for r in (self.find(_text(i)) for i in ids) if r is not None]

    def open_requests(self) -> Iterator[ApprovalRequest]:
        """Pending requests and unreviewed break-glass ones."""
        for raw in sorted(self._call(self.client.smembers, self.key("approvals", "open"))):
            found = self.find(_text(raw))
            if found is not None:
                yield found

    def expire_due(self, now: datetime) -> list[ApprovalRequest]:
        """Mark every pending request past its deadline expired; return those this call expired."""
        expired = []
        for request in list(self.open_requests()):
            before, after = self.update(request.id, lambda r: expire_if_due(r, now))
            if before.state == RequestState.PENDING and after.state == RequestState.EXPIRED:
                expired.append(after)
        return expired

    def _read(self, request_id: str) -> tuple[ApprovalRequest, str]:
        raw = self._call(self.client.hmget, self.key("approval", request_id), "rev", "doc")
        if not raw or raw[0] is None or raw[1] is None:
            raise NotFoundError(
                f"no restore request {request_id}",
                hint="see the card's id, e.g. rr-20261124T0300Z-…",
            )
        try:
            return ApprovalRequest.model_validate_json(raw[1]), _text(raw[0])
        except ValidationError as exc:
            raise IntegrityError(
                f"restore request {request_id} is malformed in Redis: {exc.errors()[0]['msg']}"
            ) from None

    def _write(self, request: ApprovalRequest, expected: str | None) -> bool:
        new_rev = str(int(expected) + 1) if expected else "1"
        done = self._call(
            self._cas,
            keys=[
                self.key("approval", request.id),
                self.key("approvals"),
                self.key("approvals", "open"),
            ],
            args=[
                expected or "",
                new_rev,
                request.model_dump_json(),
                request.state.value,
                "1" if _open(request) else "0",
                request.id,
                request.created_at.timestamp(),
            ],
        )
        if done and expected is None:
            self._call(self.client.zremrangebyrank, self.key("approvals"), 0, -RECENT_KEPT - 1)
        return bool(done)

    @staticmethod
    def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.exceptions.ConnectionError as exc:
            raise StorageUnavailable(
                "Redis cannot be reached, so no restore request can be read or decided",
                hint="check redis.url; nothing was approved or run",
            ) from exc
