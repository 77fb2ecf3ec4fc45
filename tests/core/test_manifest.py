"""The manifest and the catalog index: shape, validation and the JSON round trip."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.strategies import LOWER, component_names, pg_names
from workers.core.ids import COMPONENT_NAME, new_backup_id
from workers.core.manifest import (
    OBJECT_NAME_PATTERN,
    BackupSummary,
    CatalogIndex,
    Manifest,
    ObjectEntry,
    VerificationRecord,
    VerificationState,
    best_verification,
    decode_name_part,
    encode_name_part,
)

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
json_maps = st.dictionaries(st.text(max_size=10), json_values, max_size=3)
hex64 = st.binary(min_size=32, max_size=32).map(bytes.hex)
object_names = st.lists(
    st.text(alphabet=LOWER + "0123456789_=-", min_size=1, max_size=8), min_size=1, max_size=3
).map(lambda parts: "o" + "/".join(parts) + ".zst")

entries = st.builds(
    ObjectEntry,
    name=object_names,
    size=st.integers(min_value=0, max_value=2**50),
    sha256=hex64,
    raw_size=st.none() | st.integers(min_value=0, max_value=2**50),
    meta=json_maps,
)
records = st.builds(
    VerificationRecord,
    state=st.sampled_from(VerificationState),
    at=moments,
    deep=st.booleans(),
    detail=st.text(max_size=40),
    checks=json_maps,
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    component = draw(component_names)
    assert COMPONENT_NAME.match(component)
    started = draw(moments)
    return Manifest(
        id=new_backup_id(component, started),
        component=component,
        kind=draw(st.sampled_from(["postgres-logical", "postgres-base", "etcd", "minio"])),
        started_at=started,
        finished_at=started
        + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2))),
        objects=tuple(draw(st.lists(entries, max_size=3))),
        compression=draw(st.none() | st.just("zstd")),
        encryption_recipients=tuple(draw(st.lists(st.text(min_size=1, max_size=20), max_size=2))),
        tool_versions=draw(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)),
        source=draw(json_maps),
        details=draw(json_maps),
        verification=draw(st.none() | records),
    )


@settings(deadline=None)
@given(manifests())
def test_manifest_json_round_trip(manifest: Manifest) -> None:
    again = Manifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest
    assert again.started_at.tzinfo is not None and again.started_at.utcoffset() == timedelta(0)
    assert again.total_size == sum(entry.size for entry in manifest.objects)


@settings(deadline=None)
@given(manifests())
def test_summary_and_index_round_trip(manifest: Manifest) -> None:
    index = CatalogIndex(component=manifest.component, facts={"recoverable_until": "x"})
    index.upsert(manifest.summary())
    again = CatalogIndex.model_validate_json(index.model_dump_json())
    assert again == index
    assert again.backups[0].size == manifest.total_size
    assert again.backups[0].objects == len(manifest.objects)


def sample(**changes: Any) -> dict[str, Any]:
    started = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    data: dict[str, Any] = {
        "id": "postgres-20261124T0300Z-7f3a",
        "component": "postgres",
        "kind": "postgres-logical",
        "started_at": started,
        "finished_at": started + timedelta(minutes=4),
        "objects": [{"name": "dump.pgc.zst", "size": 10, "sha256": "a" * 64}],
    }
    data.update(changes)
    return data


def test_timestamps_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    manifest = Manifest.model_validate(
        sample(started_at=datetime(2026, 11, 24, 5, 0, tzinfo=plus_two))
    )
    assert manifest.started_at == datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    assert manifest.started_at.tzinfo == UTC
    assert manifest.duration_seconds == 240


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"started_at": datetime(2026, 11, 24, 3, 0)}, "timezone"),
        ({"id": "bogus"}, "not a backup id"),
        ({"objects": [{"name": "../x", "size": 1, "sha256": "a" * 64}]}, "safe object name"),
        ({"objects": [{"name": "a//b", "size": 1, "sha256": "a" * 64}]}, "safe object name"),
        ({"objects": [{"name": "a/", "size": 1, "sha256": "a" * 64}]}, "safe object name"),
        ({"objects": [{"name": "x", "size": -1, "sha256": "a" * 64}]}, "greater than"),
        ({"objects": [{"name": "x", "size": 1, "sha256": "A" * 64}]}, "pattern"),
        ({"unknown": 1}, "Extra inputs"),
        ({"version": 2}, "1"),
    ],
)
def test_malformed_manifests_are_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Manifest.model_validate(sample(**changes))


def test_object_lookup() -> None:
    manifest = Manifest.model_validate(sample())
    assert manifest.object("dump.pgc.zst").size == 10
    with pytest.raises(KeyError):
        manifest.object("missing")


# -- verification records ----------------------------------------------------------------------

T0 = datetime(2026, 11, 24, 4, 0, tzinfo=UTC)
PASSED, FAILED = VerificationState.PASSED, VerificationState.FAILED


def record(state: VerificationState, minutes: int, deep: bool) -> VerificationRecord:
    return VerificationRecord(state=state, at=T0 + timedelta(minutes=minutes), deep=deep)


def test_a_shallow_verification_never_overwrites_a_deep_one() -> None:
    manifest = Manifest.model_validate(sample())
    deep = record(PASSED, 0, deep=True)
    assert manifest.verified(deep).verification == deep  # a deep check checks the sums too
    shallow = record(PASSED, 10, deep=False)
    both = manifest.verified(deep).verified(shallow)
    assert both.deep_verification == deep and both.verification == shallow
    newer = record(FAILED, 20, deep=False)
    assert both.verified(newer).deep_verification == deep  # newest of each kept
    assert both.verified(newer).verification == newer
    again = Manifest.model_validate_json(both.model_dump_json())
    assert again == both
    assert again.summary().verification == deep  # the index holds the verdict
    assert again.verified(newer).summary().verification == newer


def test_an_old_manifest_with_one_deep_record_reads_it_as_the_newest_deep_one() -> None:
    old = sample(verification=record(PASSED, 0, deep=True).model_dump(mode="json"))
    manifest = Manifest.model_validate_json(Manifest.model_validate(old).model_dump_json())
    assert manifest.verification == manifest.deep_verification == record(PASSED, 0, deep=True)
    shallow = Manifest.model_validate(sample(verification=record(FAILED, 0, deep=False)))
    assert shallow.verification == record(FAILED, 0, deep=False)
    assert shallow.deep_verification is None
    with pytest.raises(ValidationError, match="shallow record"):
        Manifest.model_validate(sample(deep_verification=record(PASSED, 0, deep=False)))


@pytest.mark.parametrize(
    ("shallow", "deep", "verdict"),
    [
        (None, None, None),
        ((PASSED, 5), None, "shallow"),
        (None, (FAILED, 5), "deep"),
        ((PASSED, 10), (PASSED, 0), "deep"),  # a deep pass says more than a newer shallow one
        ((FAILED, 10), (PASSED, 0), "shallow"),  # a newer failure beats an older pass
        ((PASSED, 10), (FAILED, 0), "deep"),  # a shallow pass cannot clear a deep failure
        ((FAILED, 10), (FAILED, 0), "shallow"),  # two failures: the newer one
    ],
)
def test_the_verdict_is_the_best_information_of_both_records(
    shallow: tuple[VerificationState, int] | None,
    deep: tuple[VerificationState, int] | None,
    verdict: str | None,
) -> None:
    records = {
        "shallow": record(*shallow, deep=False) if shallow else None,
        "deep": record(*deep, deep=True) if deep else None,
    }
    expected = records[verdict] if verdict else None
    assert best_verification(records["shallow"], records["deep"]) == expected
    manifest = Manifest.model_validate(sample())
    for made in sorted((r for r in records.values() if r), key=lambda r: r.at):
        manifest = manifest.verified(made)  # in the order they were made
    assert manifest.verdict == expected
    # A newer deep pass clears a failure of either kind; a newer deep failure stands.
    for state in (PASSED, FAILED):
        deeper = record(state, 30, deep=True)
        assert manifest.verified(deeper).verdict == deeper


def summary(backup_id: str, finished: datetime) -> BackupSummary:
    return BackupSummary(
        id=backup_id,
        component="etcd",
        kind="etcd",
        started_at=finished - timedelta(minutes=1),
        finished_at=finished,
        size=1,
        objects=1,
    )


def test_index_upsert_keeps_order_and_replaces() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    index = CatalogIndex(component="etcd")
    index.upsert(summary("etcd-20260101T0200Z-0002", base + timedelta(hours=2)))
    index.upsert(summary("etcd-20260101T0000Z-0001", base))
    index.upsert(summary("etcd-20260101T0100Z-0003", base + timedelta(hours=1)))
    assert [b.id for b in index.backups] == [
        "etcd-20260101T0000Z-0001",
        "etcd-20260101T0100Z-0003",
        "etcd-20260101T0200Z-0002",
    ]
    verified = summary("etcd-20260101T0000Z-0001", base).model_copy(
        update={"verification": VerificationRecord(state=VerificationState.PASSED, at=base)}
    )
    index.upsert(verified)
    assert len(index.backups) == 3
    assert index.backups[0].verification is not None
    index.remove("etcd-20260101T0100Z-0003")
    index.remove("not-there")
    assert [b.id for b in index.backups] == ["etcd-20260101T0000Z-0001", "etcd-20260101T0200Z-0002"]


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("app_db-2.v1", "app_db-2.v1"),
        ("App", "App"),
        ("-x", "_=2Dx"),
        (".hidden", "_=2Ehidden"),
        ("_x", "_=5Fx"),
        ("=x", "_=3Dx"),
        ("x_=", "x_=3D"),
        ("my db", "my=20db"),
        ('it\'s "q"', "it=27s=20=22q=22"),
        ("a/b\\c%d", "a=2Fb=5Cc=25d"),
        ("a=2D", "a=3D2D"),
        ("données", "donn=C3=A9es"),
        ("\U0001f418", "_=F0=9F=90=98"),
    ],
)
def test_names_encode_readably_where_safe_and_escape_the_rest(text: str, encoded: str) -> None:
    assert encode_name_part(text) == encoded
    assert decode_name_part(encoded) == text
    assert ObjectEntry(name=encoded + ".dump", size=0, sha256="a" * 64).name == encoded + ".dump"


@given(pg_names)
def test_every_legal_database_name_encodes_to_a_valid_object_name_and_back(name: str) -> None:
    encoded = encode_name_part(name)
    assert re.match(OBJECT_NAME_PATTERN, encoded + ".dump.zst.age")
    assert "/" not in encoded
    assert encoded.startswith("_=") or (encoded[0].isascii() and encoded[0].isalnum())
    assert encode_name_part(name) == encoded  # stable
    assert decode_name_part(encoded) == name
    assert len(encoded) <= 3 * 63


@given(pg_names, pg_names)
def test_different_names_never_share_an_object_name(one: str, two: str) -> None:
    assert (encode_name_part(one) == encode_name_part(two)) == (one == two)


def test_names_differing_only_in_case_or_an_unsafe_character_stay_apart() -> None:
    names = ["app", "App", "APP", "a pp", "a/pp", "a%pp", "a=pp", "a-pp", "-app", "_app", "=app"]
    assert len({encode_name_part(name) for name in names}) == len(names)


@pytest.mark.parametrize(
    "part", ["", "=2Dx", "_=2d", "=4", "=G0", "_=41", "_x", "a=2", "_=C3", "é", "a b"]
)
def test_only_canonical_encodings_decode(part: str) -> None:
    with pytest.raises(ValueError, match="not an encoded name"):
        decode_name_part(part)


# -- edges: messages, instants, first characters -------------------------------------------------


def test_a_naive_timestamp_is_refused_in_words() -> None:
    with pytest.raises(ValidationError) as caught:
        Manifest.model_validate(sample(finished_at=datetime(2026, 11, 24, 3, 4)))
    [problem] = caught.value.errors()
    assert (problem["loc"], problem["msg"]) == (
        ("finished_at",),
        "Value error, timestamps must carry a timezone",
    )


@pytest.mark.usefixtures("berlin_clock")
def test_timestamps_are_utc_whatever_the_machines_timezone() -> None:
    plus_two = timezone(timedelta(hours=2))
    manifest = Manifest.model_validate(
        sample(started_at=datetime(2026, 11, 24, 5, 0, tzinfo=plus_two))
    )
    assert manifest.started_at.tzinfo is UTC
    assert manifest.started_at.isoformat() == "2026-11-24T03:00:00+00:00"


def test_a_missing_object_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError) as caught:
        Manifest.model_validate(sample()).object("base.tar.zst")
    assert caught.value.args == ("base.tar.zst",)


def test_a_failure_at_the_same_instant_as_the_deep_record_does_not_beat_it() -> None:
    deep = record(PASSED, 0, deep=True)
    same_time = record(FAILED, 0, deep=False)
    assert best_verification(same_time, deep) is deep
    assert best_verification(record(FAILED, 1, deep=False), deep) == record(FAILED, 1, deep=False)


def test_an_empty_text_has_no_object_name() -> None:
    with pytest.raises(ValueError, match="^an empty text has no object name$"):
        encode_name_part("")


@pytest.mark.parametrize("text", ["X", "Xy", "XX-", "x-._"])
def test_only_a_leading_dash_dot_or_underscore_is_escaped(text: str) -> None:
    assert encode_name_part(text) == text
    assert decode_name_part(text) == text
