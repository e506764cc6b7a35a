"""The progress line of a generation run: an ETA while requests complete, a wait when stuck."""

from __future__ import annotations

from eval_pipeline.engine.run import Progress


def _progress(**overrides) -> Progress:
    values = dict(
        done=99,
        total=100,
        cached=0,
        errors=0,
        elapsed_s=120.0,
        output_tokens=5000,
        cost_usd=0.01,
        attempts=100,
        in_flight=1,
    )
    values.update(overrides)
    return Progress(**values)


def test_a_partition_stuck_on_its_last_request_says_it_is_waiting_instead_of_an_eta():
    # 99 answers in the first minute, then nothing for a minute: the old line read "ETA 1s".
    message = _progress(last_done_s=60.0).message()
    assert "waiting on 1 requests in flight for 60s" in message
    assert "ETA" not in message


def test_a_partition_that_keeps_completing_requests_shows_its_eta():
    message = _progress(last_done_s=119.5).message()
    assert "ETA 1s" in message
    assert "waiting" not in message


def test_a_short_gap_within_the_eta_is_not_called_a_stall():
    # 10 done in 10 s (1 req/s): 90 left, so 6 s without a completion is within the ETA.
    progress = _progress(done=10, elapsed_s=16.0, last_done_s=10.0, in_flight=8)
    assert progress.stalled_s is None
    assert "ETA" in progress.message()


def test_nothing_completed_yet_reads_as_waiting_on_the_requests_in_flight():
    message = _progress(done=0, elapsed_s=40.0, last_done_s=0.0, in_flight=8).message()
    assert "waiting on 8 requests in flight for 40s" in message


def test_a_local_batch_without_an_in_flight_count_waits_on_the_remaining_requests():
    message = _progress(done=92, elapsed_s=300.0, last_done_s=100.0, in_flight=0).message()
    assert "waiting on 8 requests in flight for 200s" in message


def test_a_caller_that_does_not_track_completions_keeps_the_eta_line():
    assert "ETA" in _progress().message()
