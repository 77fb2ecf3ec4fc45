"""etcd's runbook operations: fetch (download and check), restore (new data dir or drill), verify.

A K3s cluster reset is never a job step: it is destructive, so the runbook shows its commands
in a manual step that a person confirms (``restore --k3s-reset`` automates it on the node).
"""

from __future__ import annotations

from typing import Any

from workers.core.errors import IntegrityError, UsageError
from workers.engines.etcd import restore, verify
from workers.runbooks.call import Call, Operation, component_of_kind
from workers.storage.refs import resolve

KIND = "etcd"
RESTORE_PARAMS = ("data_dir", "snapshot_path", "scratch", "member", "peer_url")


def _component(call: Call) -> str:
    component = component_of_kind(call.ctx, KIND, call.text("component"))
    if component is None:
        raise UsageError("no etcd component is configured", hint="add one under components:")
    return component


def etcd_fetch(call: Call) -> dict[str, Any]:
    """Download a snapshot to the node and check it; outputs the path the reset needs."""
    options = {"snapshot_path": call.text("snapshot_path")} if call.text("snapshot_path") else {}
    return _outputs(call, options)


def etcd_restore(call: Call) -> dict[str, Any]:
    """Restore into a new data dir, or (``scratch``) serve it on loopback and compare."""
    if call.flag("k3s_reset"):
        raise UsageError(
            "runbooks never reset a cluster from a job step",
            hint="fetch the snapshot, then confirm the reset commands in a manual step",
        )
    options: dict[str, Any] = {
        name: call.text(name) for name in RESTORE_PARAMS if call.text(name) is not None
    }
    if "scratch" in options:
        options["scratch"] = call.flag("scratch")
    return _outputs(call, options)


def etcd_verify(call: Call) -> dict[str, Any]:
    """Verify a snapshot (``deep``: serve it on loopback and compare its keys)."""
    component = _component(call)
    manifest = resolve(call.ctx.repo, component, call.text("backup", "latest") or "latest")
    checked = verify.verify(
        call.ctx, component, manifest, deep=call.flag("deep"), progress=call.progress
    )
    record = checked.verification
    if record is None or record.state.value != "passed":
        raise IntegrityError(
            f"backup {manifest.id} failed verification: {record.detail if record else '?'}",
            hint="pick an older backup: --param backup=<id>",
        )
    return {"backup_id": manifest.id, "state": record.state.value, "detail": record.detail}


def _outputs(call: Call, options: dict[str, Any]) -> dict[str, Any]:
    result = restore.restore(
        call.ctx,
        _component(call),
        call.text("backup", "latest") or "latest",
        progress=call.progress,
        **options,
    )
    outputs = result.model_dump(mode="json")
    outputs["commands"] = "\n".join(result.commands)
    outputs["restore_point"] = outputs.pop("revision")
    return outputs


def _configured(ctx: Any) -> bool:
    # A disabled component's steps are done by hand (or skipped in a drill): no worker there.
    component = component_of_kind(ctx, KIND)
    return component is not None and ctx.settings.component(component).enabled


OPERATIONS: dict[str, Operation] = {
    "etcd.fetch": Operation(etcd_fetch, safe_to_repeat=False, available=_configured),
    "etcd.restore": Operation(etcd_restore, safe_to_repeat=False, available=_configured),
    "etcd.verify": Operation(etcd_verify, safe_to_repeat=True, available=_configured),
}
