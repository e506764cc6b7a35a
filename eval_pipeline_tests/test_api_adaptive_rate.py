"""The adaptive request rate: decrease on 429s, gradual recovery, caps, rate-limit headers."""

from __future__ import annotations

import pytest

from eval_pipeline.engine.ratelimit import (
    AdaptiveRate,
    ServerLimits,
    SharedRates,
    parse_limit_headers,
)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _book(rate: AdaptiveRate, clock: Clock) -> int:
    """Wait (on the fake clock) until ``rate`` lets a request go; its epoch."""
    while True:
        wait, epoch = rate.try_reserve()
        if wait <= 0:
            return epoch
        clock.now += wait


def _send(rate: AdaptiveRate, clock: Clock, outcomes: list[bool], spacing_s: float) -> None:
    """Send one request per outcome, ``spacing_s`` apart, each answered at once."""
    for limited in outcomes:
        epoch = _book(rate, clock)
        clock.now += spacing_s
        rate.on_response(epoch, rate_limited=limited)


def test_the_rate_starts_at_the_catalog_limit_and_paces_two_requests_deep():
    clock = Clock()
    rate = AdaptiveRate(10.0, clock=clock)
    times = []
    for _ in range(5):
        _book(rate, clock)
        times.append(clock.now)
    assert times == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])
    assert rate.rate() == 10.0


def test_a_lowered_rate_applies_to_requests_already_waiting():
    clock = Clock()
    rate = AdaptiveRate(10.0, clock=clock)
    _book(rate, clock), _book(rate, clock)
    wait, epoch = rate.try_reserve()
    assert wait == pytest.approx(0.1) and epoch == -1  # nothing booked while it waits
    rate.on_response(0, rate_limited=False, limits=ServerLimits(limit_per_min=300))
    clock.now += wait
    assert rate.try_reserve()[0] == pytest.approx(0.1)  # now 5/s: 0.2 s after the last


def test_a_429_storm_lowers_the_rate_to_what_the_server_accepted_in_one_step():
    # Sending 20/s to a server that accepts 10/s: every other request is a 429.
    clock = Clock()
    rate = AdaptiveRate(20.0, clock=clock)
    # A 429 opens the window, eight more decide.
    _send(rate, clock, [False, True] * 9, spacing_s=0.05)
    assert rate.decreases == 1
    # 20/s x (1 - 1/2) less the 5% margin.
    assert rate.rate() == pytest.approx(9.5, rel=0.02)


def test_429s_of_requests_sent_before_a_decrease_do_not_lower_the_rate_again():
    clock = Clock()
    rate = AdaptiveRate(20.0, clock=clock)
    old_epoch = _book(rate, clock)  # in flight while the rate is lowered
    _send(rate, clock, [False, True] * 9, spacing_s=0.05)
    lowered = rate.rate()
    for _ in range(20):
        rate.on_response(old_epoch, rate_limited=True)
    assert rate.decreases == 1 and rate.rate() == pytest.approx(lowered)


def test_a_decrease_keeps_at_least_40_percent_of_the_rate_and_needs_a_window_of_answers():
    clock = Clock()
    rate = AdaptiveRate(20.0, clock=clock)
    _send(rate, clock, [True] * 8, spacing_s=0.05)
    assert rate.decreases == 0  # one 429 opens the window, seven are not enough to decide
    _send(rate, clock, [True], spacing_s=0.05)
    assert rate.rate() == pytest.approx(8.0, rel=0.02)


def test_the_rate_recovers_linearly_and_never_above_the_catalog_limit():
    clock = Clock()
    rate = AdaptiveRate(20.0, clock=clock, recovery_per_s=0.01)
    _send(rate, clock, [False, True] * 9, spacing_s=0.05)
    low = rate.rate()
    clock.now += 10.0
    assert rate.rate() == pytest.approx(low * 1.10, rel=0.01)
    clock.now += 1000.0
    assert rate.rate() == 20.0


def test_without_a_catalog_limit_the_rate_starts_unlimited_and_is_learned_from_429s():
    clock = Clock()
    rate = AdaptiveRate(None, clock=clock)
    assert rate.try_reserve()[0] == 0.0 and rate.rate() is None
    # 50 sends a second, a quarter of them refused.
    _send(rate, clock, [False, False, False, True] * 10, spacing_s=0.02)
    learned = rate.rate()
    assert learned is not None and 30.0 < learned < 40.0
    clock.now += 1000.0
    assert rate.rate() > 50.0  # climbs on without a ceiling


def test_429s_that_a_lower_rate_does_not_reduce_undo_the_decrease_and_pause_decreases():
    # A server that refuses a quarter of requests whatever the rate.
    clock = Clock()
    rate = AdaptiveRate(40.0, clock=clock, hold_s=30.0)
    pattern = [False, False, False, True] * 10
    _send(rate, clock, pattern, spacing_s=0.025)
    assert rate.decreases == 1
    _send(rate, clock, pattern, spacing_s=1.0 / rate.rate())
    assert rate.reverts == 1 and rate.rate() == 40.0
    _send(rate, clock, pattern * 3, spacing_s=0.025)  # within the hold: no decrease
    assert rate.decreases == 1 and rate.rate() == 40.0


def test_a_limit_stated_in_headers_caps_the_rate_below_the_catalog():
    clock = Clock()
    rate = AdaptiveRate(20.0, clock=clock)
    epoch = _book(rate, clock)
    rate.on_response(epoch, rate_limited=False, limits=ServerLimits(limit_per_min=600))
    assert rate.rate() == pytest.approx(10.0)
    # A stated limit above the catalog's does not raise it.
    rate.on_response(epoch, rate_limited=False, limits=ServerLimits(limit_per_min=6000))
    assert rate.rate() == pytest.approx(20.0)


def test_no_requests_left_in_the_window_holds_the_next_send():
    clock = Clock()
    rate = AdaptiveRate(None, clock=clock)
    epoch = _book(rate, clock)
    rate.on_response(
        epoch, rate_limited=False, limits=ServerLimits(limit_per_min=60, remaining=0, reset_s=30)
    )
    delay, _ = rate.try_reserve()
    assert delay == pytest.approx(1.0)  # one request's share of the minute, not the full reset


@pytest.mark.parametrize(
    "headers,expected",
    [
        (
            {
                "x-ratelimit-limit-requests": "600",
                "x-ratelimit-remaining-requests": "599",
                "x-ratelimit-reset-requests": "6m0.5s",
            },
            ServerLimits(600.0, 599.0, 360.5),
        ),
        ({"X-RateLimit-Reset-Requests": "20ms"}, ServerLimits(reset_s=0.02)),
        (
            {
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "1970-01-01T00:01:40Z",
            },
            ServerLimits(50.0, 0.0, 40.0),
        ),
        ({"x-ratelimit-limit-requests": "lots"}, None),
        ({"content-type": "application/json"}, None),
    ],
)
def test_openai_and_anthropic_rate_limit_headers_are_read(headers, expected):
    assert parse_limit_headers(headers, now_epoch_s=60.0) == expected


def test_runs_against_one_server_share_one_rate_until_the_last_leaves():
    shared = SharedRates()
    first = shared.join(("openai", "http://x/v1", "m"), 10.0)
    second = shared.join(("openai", "http://x/v1", "m"), 10.0)
    other = shared.join(("openai", "http://y/v1", "m"), 10.0)
    assert first is second and first is not other
    shared.leave(("openai", "http://x/v1", "m"))
    assert shared.join(("openai", "http://x/v1", "m"), 10.0) is first
    shared.leave(("openai", "http://x/v1", "m"))
    shared.leave(("openai", "http://x/v1", "m"))
    assert shared.join(("openai", "http://x/v1", "m"), 10.0) is not first
