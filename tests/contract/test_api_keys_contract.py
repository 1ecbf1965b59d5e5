"""API keys in every store: created with a hash only, found by id, listed, revoked."""

from __future__ import annotations

import datetime as dt

import pytest

from jobq.auth.keys import ApiKey, hash_secret, new_key
from jobq.auth.principal import Role
from jobq.core.errors import AlreadyExists, NotFound
from jobq.store.base import Store

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def make(tenant: str = "acme", **fields: object) -> tuple[ApiKey, str]:
    key_id, secret, _ = new_key()
    values: dict[str, object] = {
        "id": key_id,
        "secret_sha256": hash_secret(secret),
        "tenant": tenant,
        "roles": frozenset({Role.WORKER, Role.SUBMITTER}),
        "queues": frozenset({"emails"}),
        "description": "ci",
        "created_at": NOW,
        "expires_at": NOW + dt.timedelta(days=90),
    } | fields
    return ApiKey(**values), secret  # type: ignore[arg-type]


async def test_a_created_key_is_found_by_id_with_every_field(store: Store) -> None:
    key, secret = make()
    await store.api_keys.create(key)
    found = await store.api_keys.get(key.id)
    assert found == key
    assert found.matches(secret) and not found.matches(secret + "x")


async def test_a_key_for_every_queue_keeps_none(store: Store) -> None:
    key, _ = make(queues=None, expires_at=None)
    await store.api_keys.create(key)
    found = await store.api_keys.get(key.id)
    assert found is not None and found.queues is None and found.expires_at is None


async def test_an_unknown_id_is_none(store: Store) -> None:
    assert await store.api_keys.get("0123456789abcdef") is None


async def test_a_taken_id_is_already_exists(store: Store) -> None:
    key, _ = make()
    await store.api_keys.create(key)
    with pytest.raises(AlreadyExists):
        await store.api_keys.create(key)


async def test_list_is_every_key_or_one_tenants_oldest_first(store: Store) -> None:
    first, _ = make("acme")
    second, _ = make("other", created_at=NOW + dt.timedelta(seconds=1))
    third, _ = make("acme", created_at=NOW + dt.timedelta(seconds=2))
    for key in (third, first, second):
        await store.api_keys.create(key)
    assert [k.id for k in await store.api_keys.all()] == [first.id, second.id, third.id]
    assert [k.id for k in await store.api_keys.all("acme")] == [first.id, third.id]


async def test_revoke_sets_the_time_once_and_an_unknown_key_is_not_found(store: Store) -> None:
    key, _ = make()
    await store.api_keys.create(key)
    revoked = await store.api_keys.revoke(key.id, NOW + dt.timedelta(hours=1))
    assert revoked.revoked_at == NOW + dt.timedelta(hours=1)
    again = await store.api_keys.revoke(key.id, NOW + dt.timedelta(hours=2))
    assert again.revoked_at == NOW + dt.timedelta(hours=1)
    found = await store.api_keys.get(key.id)
    assert found is not None and not found.usable(NOW + dt.timedelta(hours=3))
    with pytest.raises(NotFound):
        await store.api_keys.revoke("0123456789abcdef", NOW)
