"""Kubernetes resources in Slack, end to end: `/backup run kubernetes`, `list`, `verify`, then
`/restore kubernetes latest --namespaces kosmos-agents -- …` approved by a second person,
through the real bot (gunicorn), a real worker, the fake Slack and the fake Kubernetes API
server with Velero's controller. The approved restore is a Velero ``Restore`` of that one
namespace, and the lost workloads come back; a second, by id and without ``--namespaces``,
restores the whole backup.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_DB
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.slack import BotAnswer, FakeSlack, post_to_bot, slash_body
from tests.fakes.velero import API, APPS, FakeVelero, platform
from tests.scenarios.bot_process import SECRET, bot_env, running_bot, running_worker
from tests.scenarios.restore_world import (
    CHANNEL,
    GROUPS,
    KEY,
    World,
    card_of,
    card_text,
    click,
    request_from,
    slash,
)
from tests.sync import wait_until
from workers.config_loader import parse_settings
from workers.context import Context
from workers.engines.velero import objects

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def velero() -> Iterator[FakeVelero]:
    """The platform's cluster and Velero's controller moving phases along."""
    kube = platform(FakeKubernetes().start())
    controller = FakeVelero(kube).start()
    try:
        yield controller
    finally:
        controller.stop()
        kube.stop()


def said(fake: FakeSlack, send: Callable[[], BotAnswer]) -> str:
    """What the bot answered this one command: its HTTP answer, response_url posts, ephemerals."""
    responses, posted = len(fake.responses), len(fake.calls_to("chat.postEphemeral"))
    answer = send()
    assert answer.status == 200, answer
    later = [call.params for call in fake.calls_to("chat.postEphemeral")[posted:]]
    return json.dumps([answer.body, fake.responses[responses:], later], ensure_ascii=False)


def done_line(world: World, request_id: str) -> str:
    """The restore's final message in its card's thread."""
    card_ts = card_of(world, request_id)[0]
    return wait_until(
        lambda: next(
            (
                str(m["text"])
                for m in list(world.fake.messages.values())
                if m.get("thread_ts") == card_ts and "Restore of kubernetes: done" in m["text"]
            ),
            None,
        ),
        60,
        "the restore's final message",
    )


def restores_of(kube: FakeKubernetes) -> list[dict[str, Any]]:
    """The Velero Restore objects in the cluster."""
    return list(kube.listed(API, "velero", "restores"))


def test_kubernetes_backup_list_verify_and_approved_restore_from_slack(
    tmp_path: Path, velero: FakeVelero
) -> None:
    kube = velero.kube
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    env = bot_env(
        fake.api_url,
        f"redis://127.0.0.1:6379/{REDIS_DB}",
        tmp_path / "store",
        KOSMOS__APPROVAL_KEY=KEY,
        KOSMOS__JOBS__RETRY_INTERVALS="[]",
        KOSMOS__COMPONENTS__KUBERNETES__KUBECONFIG=str(kube.kubeconfig(tmp_path / "kubeconfig")),
    )
    repo = Context(parse_settings(Path(env["KOSMOS_BACKUP_CONFIG"]).read_text(), env)).repo
    try:
        with (
            running_bot(env, tmp_path / "bot.log") as bot,
            running_worker(env, tmp_path / "worker.log", "kosmos-default"),
        ):
            world = World(fake, bot, env, tmp_path, "", None)

            def backup(text: str) -> BotAnswer:
                body = slash_body(text, user="UALICE", channel=CHANNEL)
                return post_to_bot(bot.url, body, SECRET)

            assert backup("run kubernetes").status == 200
            [made] = wait_until(lambda: repo.index("kubernetes").backups, 60, "the backup")
            velero_name = objects.velero_name(made.id)
            assert kube.get(API, "velero", "backups", velero_name) is not None
            assert backup(f"verify kubernetes {made.id}").status == 200
            wait_until(lambda: repo.manifest(made.id).verification or None, 60, "the verify")
            record = repo.manifest(made.id).verification
            assert record is not None and record.state.value == "passed", record
            assert made.id in said(fake, lambda: backup("list kubernetes"))

            restore_from_slack(world, kube, made.id)
    finally:
        fake.stop()


def restore_from_slack(world: World, kube: FakeKubernetes, backup_id: str) -> None:
    """One namespace restored from ``latest``, then the whole backup by id, each approved."""
    velero_name = objects.velero_name(backup_id)
    # The agents' namespace is lost; nothing is restored before a second person says so.
    kube.namespace_gone("kosmos-agents")
    refused = said(
        world.fake,
        lambda: slash(world, "kubernetes latest --namespaces Kube_System -- no", "UALICE"),
    )
    assert "'kube_system' is not a namespace name" in refused, refused
    asked = slash(
        world, "kubernetes latest --namespaces kosmos-agents -- agents are gone", "UALICE"
    )
    request_id = request_from(asked)
    assert "kosmos-agents" in card_text(world, request_id)
    assert restores_of(kube) == []
    assert click(world, request_id, "UBOB", "approve").status == 200
    [restore] = wait_until(lambda: restores_of(kube), 60, "the Velero Restore")
    assert restore["spec"]["backupName"] == velero_name
    restore_name = restore["metadata"]["name"]
    assert restore["spec"]["includedNamespaces"] == ["kosmos-agents"]
    wait_until(
        lambda: kube.get(APPS, "kosmos-agents", "deployments", "planner"),
        60,
        "the restored planner",
    )
    card = wait_until(
        lambda: ": finished." in card_text(world, request_id) and card_text(world, request_id),
        60,
        "the card's result",
    )
    assert "Approved by <@UBOB>" in card and "against an RTO of" in card, card
    # The restore's own message, in the card's thread, says what Velero did.
    assert "velero Completed: 3/3 items, 0 warnings, 0 errors" in done_line(world, request_id)

    # By id and whole: every namespace of the backup (what still exists is left alone).
    whole = request_from(slash(world, f"kubernetes {backup_id} -- whole cluster", "UALICE"))
    # The card names where a whole restore goes: the namespaces the backup holds.
    assert "*Target*\\nkosmos-agents,kosmos-data,kosmos-system" in card_text(world, whole)
    assert click(world, whole, "UBOB", "approve").status == 200
    wait_until(lambda: len(restores_of(kube)) == 2, 60, "the second Velero Restore")
    [second] = [r for r in restores_of(kube) if r["metadata"]["name"] != restore_name]
    assert second["spec"]["backupName"] == velero_name
    assert not second["spec"].get("includedNamespaces"), second["spec"]
    # Everything exists again by now: Velero leaves each as it is, a warning each.
    assert "velero Completed: 6/6 items, 6 warnings, 0 errors" in done_line(world, whole)
