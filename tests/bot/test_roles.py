"""Roles: user ids and user groups resolved through the fake Slack Web API, failing closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.roles import Authorizer, Permission, SelfNamedGroups, SlackGroups
from tests.fakes.slack import FakeSlack
from workers.core.config import Roles
from workers.core.errors import PermissionDenied

ROLES = Roles(
    viewers=("@platform", "U0DIRECT"),
    operators=("@sre",),
    approvers=("@sre-leads",),
    incident_commanders=("@incident-commanders",),
)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack(
        usergroups={"platform": ["UVIEW", "UOPS"], "sre": ["UOPS"], "sre-leads": ["ULEAD"]}
    ).start()
    yield server
    server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authorizer(fake: FakeSlack, clock: Clock | None = None) -> Authorizer:
    client = WebClient(token="xoxb-test", base_url=fake.api_url)
    return Authorizer(ROLES, SlackGroups(client, clock=clock or Clock()))


def test_group_members_and_direct_ids_get_their_roles(fake: FakeSlack) -> None:
    roles = authorizer(fake)
    assert roles.roles_of("UOPS") == {"viewers", "operators"}
    assert roles.roles_of("UVIEW") == {"viewers"}
    assert roles.roles_of("U0DIRECT") == {"viewers"}
    assert roles.roles_of("ULEAD") == {"approvers"}
    assert roles.roles_of("UNOBODY") == frozenset()
    assert Permission.OPERATE in roles.permissions_of("UOPS")
    roles.check("UOPS", "backup.run")
    roles.check("UVIEW", "backup.status")


def test_viewers_may_not_run_and_the_refusal_says_which_role_is_needed(fake: FakeSlack) -> None:
    with pytest.raises(PermissionDenied) as caught:
        authorizer(fake).check("UVIEW", "backup.run")
    assert caught.value.message == (
        "you may not use backup run: it needs the operators or incident_commanders role"
    )
    assert "slack.roles.operators" in caught.value.hint and "@sre" in caught.value.hint


def test_an_action_without_a_rule_is_refused_to_everyone(fake: FakeSlack) -> None:
    with pytest.raises(PermissionDenied):
        authorizer(fake).check("UOPS", "no-such.action")


def test_group_lookups_are_cached_until_the_ttl_passes(fake: FakeSlack) -> None:
    clock = Clock()
    roles = authorizer(fake, clock)
    for _ in range(5):
        roles.check("UOPS", "backup.run")
    assert len(fake.calls_to("usergroups.list")) == 1
    assert len(fake.calls_to("usergroups.users.list")) == 1  # only @sre grants operate
    fake.usergroups["sre"] = []
    clock.now += 61
    with pytest.raises(PermissionDenied):
        roles.check("UOPS", "backup.run")


def test_when_slack_cannot_answer_groups_count_as_empty(fake: FakeSlack) -> None:
    clock = Clock()
    roles = authorizer(fake, clock)
    fake.fail["usergroups.users.list"] = "internal_error"
    assert roles.roles_of("UOPS") == frozenset()
    fake.fail.clear()
    clock.now += 6  # failures are retried after a few seconds, not cached for the full TTL
    assert roles.roles_of("UOPS") == {"viewers", "operators"}
    fake.stop()
    clock.now += 120
    assert roles.roles_of("UOPS") == frozenset()
    assert roles.roles_of("U0DIRECT") == {"viewers"}  # ids need no lookup


def test_console_resolver_makes_a_handle_its_own_member() -> None:
    roles = Authorizer(ROLES, SelfNamedGroups())
    assert roles.roles_of("@sre") == {"operators"}
    assert roles.users() == ["@platform", "U0DIRECT", "@sre", "@sre-leads", "@incident-commanders"]
    assert Authorizer(Roles(), SelfNamedGroups(), open_access=True).roles_of("x") == {
        "viewers",
        "operators",
        "approvers",
        "incident_commanders",
    }
