"""The upward pusher's lease (issue 18 item 5): short (60 s) and renewed before every request, so a killed pusher
holds it a minute at most, not 10; a push that finds it held is skipped and says until when; a pusher whose lease
was taken over stops without backing off; ``push-upward --once`` exits 1 when it skipped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import update

from certstore.exchange.upward import LEASE_LOST, _take_lease, push_upward
from certstore.services.catalogue import load_shipped
from certstore.store.models import ExchangeLeaseRow, UpwardTargetRow
from certstore.store.repository import Repository
from devservers.ports import free_port
from tests.exchange import test_upward as upward_tests
from tests.exchange.test_upward import Province, _issue
from tests.services.conftest import DraftMaker

# The upward tests' fixtures: the city, the province (the ``repo`` fixture, each backend), keys and drafts.
city = upward_tests.city
city_keys = upward_tests.city_keys
province = upward_tests.province
repo = upward_tests.repo
clock = upward_tests.clock
draft = upward_tests.draft

TTL = timedelta(seconds=60)


class Watching:
    """An HTTP client for the pusher that calls ``before`` ahead of each request to the province."""

    def __init__(self, target: Province, before: Callable[[], None]) -> None:
        self.province, self.before = target, before

    def post(self, url: str, **kwargs: Any) -> Any:
        self.before()
        return self.province.client.post(url, **kwargs)


def _lease(sender: Repository) -> ExchangeLeaseRow | None:
    with sender.db.session(readonly=True) as session:
        return session.get(ExchangeLeaseRow, "upward:henan")


def test_the_lease_is_short_and_renewed_before_every_request(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    """Each request advances the city's clock 40 s — longer than half the lease: without renewal the lease would
    lapse after two requests. Before every request the lease is ours until now + 60 s; after the push it is free."""
    _, key = city_keys
    for n in (1, 2, 3):
        _issue(city, draft, key, n=n)
    seen: list[tuple[str | None, Any, Any]] = []

    def before() -> None:
        lease = _lease(city)
        assert lease is not None
        seen.append((lease.holder, lease.lease_until, city.now()))
        city.clock.advance(seconds=40)  # type: ignore[attr-defined]

    stats = push_upward(city, province.target, http=Watching(province, before), batch=2, worker="pusher-1")  # type: ignore[arg-type]
    assert stats.ok and stats.caught_up and stats.events_applied >= 3, stats.summary()
    assert len(seen) >= 3
    assert all(holder == "pusher-1" and until == now + TTL for holder, until, now in seen)
    lease = _lease(city)
    assert lease is not None and lease.holder is None  # released at the end


def test_a_killed_pushers_lease_lapses_after_a_minute(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    """A pusher killed mid-push left its lease: the next push is skipped, reporting when the lease ends (not
    None); 61 s later the lease has lapsed and the push delivers everything."""
    _, key = city_keys
    _issue(city, draft, key, n=1)
    assert _take_lease(city, "upward:henan", "killed-pusher", city.now())
    ends = city.now() + TTL
    skipped = push_upward(city, province.target, http=province.client, force=True)
    assert skipped.skipped and not skipped.ok and skipped.next_attempt_at == ends
    assert skipped.summary() == f"henan: skipped (another pusher holds the lease) until {ends.isoformat()}"
    city.clock.advance(seconds=61)  # type: ignore[attr-defined]
    stats = push_upward(city, province.target, http=province.client)
    assert stats.ok and stats.caught_up and stats.events_applied == 1, stats.summary()


def test_a_pusher_whose_lease_was_taken_over_stops_without_backing_off(
    city: Repository, province: Province, draft: DraftMaker, city_keys
) -> None:
    """Another pusher takes the lease during the first request (it outlasted the lease): the first pusher stops at
    its next renewal, keeps what the province acknowledged, and records no failure (no backoff)."""
    _, key = city_keys
    for n in (1, 2):
        _issue(city, draft, key, n=n)
    requests = 0

    def before() -> None:
        nonlocal requests
        requests += 1
        if requests == 1:  # while the first request is under way, another pusher takes the lease
            with city.db.session() as session:
                session.execute(
                    update(ExchangeLeaseRow)
                    .where(ExchangeLeaseRow.source == "upward:henan")
                    .values(holder="other", lease_until=city.now() + TTL)
                )

    client = Watching(province, lambda: None)
    stats = push_upward(city, province.target, http=client, batch=1, worker="slow")  # type: ignore[arg-type]
    assert stats.ok  # alone, it would deliver everything
    with city.db.session() as session:  # start again from scratch with the lease stolen mid-way
        session.execute(update(UpwardTargetRow).values(event_cursor=0, catalogue_cursor=0))
    stolen = push_upward(city, province.target, http=Watching(province, before), batch=1, worker="slow")  # type: ignore[arg-type]
    assert stolen.error == LEASE_LOST and not stolen.ok
    assert stolen.attempts == 0 and stolen.next_attempt_at is None  # not the province's failure
    assert stolen.batches == 1  # the request made before the takeover only
    lease = _lease(city)
    assert lease is not None and lease.holder == "other"  # the new holder keeps it


def test_push_upward_once_exits_1_when_skipped(tmp_path: Path) -> None:
    """``certstore exchange push-upward --once --force`` while another pusher holds the lease: "skipped (another
    pusher holds the lease) until <time>" and exit status 1."""
    from certstore.cli.common import Context
    from certstore.cli.exchange_upward import push_upward_command

    context = Context(data_dir=tmp_path / "city")
    city_repo = context.repository()
    load_shipped(city_repo)
    assert _take_lease(city_repo, "upward:henan", "other-host:42:abcd", city_repo.now())
    with city_repo.db.session(readonly=True) as session:
        until = session.get(ExchangeLeaseRow, "upward:henan").lease_until  # type: ignore[union-attr]
    city_repo.db.dispose()
    args = [
        "--target",
        f"henan=http://127.0.0.1:{free_port()}",
        "--token-env",
        "UPWARD_TOKEN",
        "--once",
        "--force",
    ]
    result = CliRunner().invoke(push_upward_command, args, obj=context, env={"UPWARD_TOKEN": "cst_x_y"})
    assert result.exit_code == 1, result.output
    assert f"henan: skipped (another pusher holds the lease) until {until.isoformat()}" in result.output
    assert "None" not in result.output
