"""The secrets engine's runbook operations: ``infisical.restore`` and ``infisical.verify``.

``infisical.restore`` is full recovery's "Restore secrets" (every exported environment back
where it came from; ``rotate: yes`` after a security incident), or with ``scratch: yes`` the
drill's import into a scratch environment with its counts compared.
"""

from __future__ import annotations

from typing import Any

from workers.context import Context
from workers.core.errors import IntegrityError, UsageError
from workers.engines.infisical.component import KIND
from workers.runbooks.call import Call, Operation, component_of_kind


def _component(call: Call) -> str:
    component = component_of_kind(call.ctx, KIND, call.text("component"))
    if component is None:
        raise UsageError(f"no {KIND} component is configured")
    return component


def restore(call: Call) -> dict[str, Any]:
    """Import the chosen backup: back into place (and rotate), or into the drill's scratch."""
    from workers.engines.infisical import runbook_steps
    from workers.state.audit_log import AuditLog
    from workers.storage.refs import resolve

    component = _component(call)
    manifest = resolve(call.ctx.repo, component, call.text("backup", "latest") or "latest")
    if call.flag("scratch"):
        return runbook_steps.drill(call.ctx, component, manifest, progress=call.progress)
    audit = AuditLog(call.ctx.redis, call.ctx.settings.redis.key_prefix)
    return runbook_steps.recover(
        call.ctx,
        component,
        manifest,
        rotate=call.flag("rotate"),
        actor=f"runbook {call.run.run_id} ({call.run.started_by})",
        record=audit.record,
        progress=call.progress,
    )


def verify(call: Call) -> dict[str, Any]:
    """A deep verify of the chosen backup: decrypted in memory, counts compared."""
    from workers.engines.infisical import verification
    from workers.storage.refs import resolve

    component = _component(call)
    chosen = resolve(call.ctx.repo, component, call.text("backup", "latest") or "latest")
    manifest = verification.verify(call.ctx, component, chosen, deep=True, progress=call.progress)
    record = manifest.verification
    if record is None or record.state.value != "passed":
        raise IntegrityError(f"backup {manifest.id} failed verification")
    return {"backup_id": manifest.id, "state": record.state.value, "detail": record.detail}


def _configured(ctx: Context) -> bool:
    # A disabled component (the shipped default: no age recipients yet) is a manual step.
    component = component_of_kind(ctx, KIND)
    return component is not None and ctx.settings.component(component).enabled


OPERATIONS = {
    # An import only creates and updates, and a second rotation just sets fresh values:
    # running either again after a crash does no harm.
    f"{KIND}.restore": Operation(restore, safe_to_repeat=True, available=_configured),
    f"{KIND}.verify": Operation(verify, safe_to_repeat=True, available=_configured),
}
"""The operations this engine offers runbooks, by full name."""
