"""Between a connector and the engine: who may talk (Auth), how often (TokenBucket,
RateLimit), and in which order the middlewares run (chain)."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leashd.daemon.middleware import Auth, Incoming, RateLimit, TokenBucket, chain


class FakeConnector:
    """A connector that only records what leashd sends it."""

    def __init__(self, name: str = "telegram") -> None:
        self.name = name
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat: str, text: str, choices=()) -> None:
        self.sent.append((chat, text))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def message(connector, user="42", text="hi", chat="chat-1") -> Incoming:
    return Incoming(connector, chat, user, text)


def deliver(middlewares, messages) -> list[Incoming]:
    """Push the messages through the chain; returns those that reached the handler."""
    reached: list[Incoming] = []

    async def handler(msg: Incoming) -> None:
        reached.append(msg)

    run = chain(middlewares, handler)

    async def go():
        for m in messages:
            await run(m)

    asyncio.run(go())
    return reached


# --- TokenBucket -----------------------------------------------------------------------------


def test_a_burst_goes_through_then_the_next_message_waits():
    clock = Clock()
    bucket = TokenBucket(rpm=60, burst=3, clock=clock)
    assert [bucket.take("u") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("u") == pytest.approx(1.0)  # one token a second at 60 a minute


def test_tokens_come_back_at_the_rate_per_minute():
    clock = Clock()
    bucket = TokenBucket(rpm=6, burst=1, clock=clock)  # one every 10 s
    assert bucket.take("u") == 0.0
    clock.now += 4
    assert bucket.take("u") == pytest.approx(6.0)
    clock.now += 5.9
    assert bucket.take("u") > 0
    clock.now += 0.1
    assert bucket.take("u") == 0.0
    assert bucket.take("u") == pytest.approx(10.0)


def test_a_long_pause_saves_no_more_than_the_burst():
    clock = Clock()
    bucket = TokenBucket(rpm=60, burst=2, clock=clock)
    bucket.take("u")
    clock.now += 3600
    assert [bucket.take("u") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


def test_each_user_has_a_bucket_of_their_own():
    clock = Clock()
    bucket = TokenBucket(rpm=1, burst=2, clock=clock)
    assert [bucket.take("alice") for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("alice") > 0
    assert [bucket.take("bob") for _ in range(2)] == [0.0, 0.0]
    assert bucket.take("bob") > 0


@settings(max_examples=300)
@given(
    rpm=st.integers(1, 600),
    burst=st.integers(1, 20),
    takes=st.lists(  # (user, milliseconds since the previous take): mostly floods
        st.tuples(
            st.sampled_from(["alice", "bob"]),
            st.one_of(st.just(0), st.integers(0, 2_000), st.integers(0, 60_000)),
        ),
        max_size=300,
    ),
)
def test_no_user_gets_more_than_burst_plus_the_rate(rpm, burst, takes):
    """Over any sequence of takes at non-decreasing times, a user gets at most
    burst + rpm * (seconds since their first message) / 60 messages through."""
    clock = Clock(0.0)
    bucket = TokenBucket(rpm, burst, clock=clock)
    deltas = [ms / 1000 for _, ms in takes]  # gaps between takes, in seconds
    first: dict[str, float] = {}
    passed: dict[str, int] = {}
    for (user, _), gap in zip(takes, deltas, strict=True):
        clock.now += gap
        first.setdefault(user, clock.now)
        if bucket.take(user) == 0.0:
            passed[user] = passed.get(user, 0) + 1
        elapsed = clock.now - first[user]
        assert passed.get(user, 0) <= burst + rpm * elapsed / 60 + 1e-9


@given(rpm=st.integers(1, 600), burst=st.integers(1, 20), n=st.integers(0, 40))
def test_a_refused_message_is_told_how_long_to_wait_and_may_go_then(rpm, burst, n):
    clock = Clock(0.0)
    bucket = TokenBucket(rpm, burst, clock=clock)
    for _ in range(burst + n):
        wait = bucket.take("u")
        if wait > 0:
            assert wait <= 60 / rpm + 1e-9
            clock.now += wait + 1e-9  # float rounding aside, the wait told is enough
            assert bucket.take("u") == 0.0


# --- RateLimit -------------------------------------------------------------------------------


def limited(rpm, burst, clock):
    rl = RateLimit(rpm, burst)
    if rl.bucket is not None:
        rl.bucket.clock = clock
    return rl


def test_rate_limit_lets_the_burst_through_then_answers_politely():
    tg = FakeConnector()
    clock = Clock()
    rl = limited(6, 2, clock)  # a token every 10 s
    reached = deliver([rl], [message(tg, text=f"m{i}") for i in range(3)])
    assert [m.text for m in reached] == ["m0", "m1"]
    assert len(tg.sent) == 1
    chat, text = tg.sent[0]
    assert chat == "chat-1"
    assert "too many messages" in text
    assert "Try again in 10 s" in text


def test_rate_limit_lets_messages_through_again_after_the_wait():
    tg = FakeConnector()
    clock = Clock()
    rl = limited(60, 1, clock)
    assert len(deliver([rl], [message(tg), message(tg)])) == 1
    clock.now += 1
    assert len(deliver([rl], [message(tg)])) == 1


def test_rate_limit_counts_each_user_of_each_connector_on_its_own():
    tg, other = FakeConnector("telegram"), FakeConnector("slack")
    rl = limited(1, 1, Clock())
    msgs = [message(tg, "alice"), message(tg, "bob"), message(other, "alice"), message(tg, "alice")]
    reached = deliver([rl], msgs)
    assert [(m.connector.name, m.user) for m in reached] == [
        ("telegram", "alice"),
        ("telegram", "bob"),
        ("slack", "alice"),
    ]
    assert len(tg.sent) == 1 and other.sent == []


def test_no_rate_limit_when_rpm_is_zero():
    tg = FakeConnector()
    rl = RateLimit(0, 1)
    assert rl.bucket is None
    assert len(deliver([rl], [message(tg) for _ in range(50)])) == 50
    assert tg.sent == []


def test_a_refusal_never_says_to_try_again_in_zero_seconds():
    tg = FakeConnector()
    clock = Clock()
    rl = limited(60, 1, clock)
    deliver([rl], [message(tg)])
    clock.now += 0.75  # 0.25 s to go
    assert deliver([rl], [message(tg)]) == []
    wait = int(re.search(r"Try again in (\d+) s", tg.sent[-1][1]).group(1))
    assert wait >= 1


# --- Auth ------------------------------------------------------------------------------------


def test_only_allowed_users_get_through_and_strangers_get_no_answer():
    tg = FakeConnector()
    auth = Auth({"42", "7"})
    reached = deliver([auth], [message(tg, "42"), message(tg, "666"), message(tg, "7")])
    assert [m.user for m in reached] == ["42", "7"]
    assert tg.sent == []


@pytest.mark.parametrize("name", ["terminal", "headless"])
def test_with_no_allowed_users_local_connectors_still_get_through(name):
    local = FakeConnector(name)
    assert len(deliver([Auth(set())], [message(local, "anyone")])) == 1


def test_with_no_allowed_users_a_remote_connector_is_shut_out():
    tg = FakeConnector("telegram")
    assert deliver([Auth(set())], [message(tg, "42")]) == []
    assert tg.sent == []


def test_an_open_bot_lets_anyone_in():
    tg = FakeConnector("telegram")
    assert len(deliver([Auth(set(), open_bot=True)], [message(tg, "anyone")])) == 1


def test_open_bot_does_not_widen_a_configured_allow_list():
    tg = FakeConnector("telegram")
    assert deliver([Auth({"42"}, open_bot=True)], [message(tg, "666")]) == []


def test_the_local_terminal_is_let_in_even_with_an_allow_list():
    assert len(deliver([Auth({"42"})], [message(FakeConnector("terminal"), "me")])) == 1


# --- chain -----------------------------------------------------------------------------------


def test_chain_runs_the_first_middleware_outermost():
    order: list[str] = []

    def named(name):
        async def mw(msg, nxt):
            order.append(f"{name} in")
            await nxt(msg)
            order.append(f"{name} out")

        return mw

    async def handler(msg):
        order.append("handler")

    asyncio.run(chain([named("a"), named("b")], handler)(message(FakeConnector())))
    assert order == ["a in", "b in", "handler", "b out", "a out"]


def test_an_empty_chain_is_the_handler():
    assert len(deliver([], [message(FakeConnector())])) == 1


def test_auth_before_rate_limit_keeps_strangers_from_using_up_or_hearing_anything():
    tg = FakeConnector()
    rl = limited(1, 1, Clock())
    # a stranger floods first
    msgs = [message(tg, "666") for _ in range(5)] + [message(tg, "42")]
    reached = deliver([Auth({"42"}), rl], msgs)
    assert [m.user for m in reached] == ["42"]
    assert tg.sent == []  # no "too many messages" for the stranger either


def test_a_middleware_that_stops_a_message_stops_the_rest_of_the_chain():
    seen: list[str] = []

    async def later(msg, nxt):
        seen.append(msg.user)
        await nxt(msg)

    reached = deliver([Auth({"42"}), later], [message(FakeConnector(), "666")])
    assert reached == [] and seen == []
