"""A planted API key never reaches Parquet, the cache, metadata, the event log or captured logs."""

from __future__ import annotations

import logging
import secrets

import dagster as dg

from eval_pipeline_tests.apiserver import ServerConfig, api_model, make_api_project, materialize_api
from eval_pipeline_tests.apiserver.fixtures import api_server_fixture

api_server = api_server_fixture()

KEY_ENV = "EVAL_TEST_PLANTED_KEY"


def test_a_planted_api_key_appears_in_no_output_file_event_or_log(
    api_server, tmp_path, monkeypatch, caplog, capfd
):
    planted = f"sk-planted-{secrets.token_hex(12)}"
    monkeypatch.setenv(KEY_ENV, planted)
    caplog.set_level(logging.DEBUG)
    options = {"api_key_env": KEY_ENV, "request_timeout_s": 2.0, "backoff_initial_s": 0.05}
    models = [
        api_model("gpt-test", "openai", api_server.openai_base_url, concurrency=4, **options),
        api_model("claude-test", "anthropic", api_server.url, concurrency=4, **options),
    ]
    project = make_api_project(tmp_path / "project", models, 30)
    store_root = tmp_path / "store"
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        # Rejected: the server's 401 body repeats the key it was given.
        api_server.configure(ServerConfig(required_key="sk-another-key", echo_key_in_errors=True))
        rejected = materialize_api(project, store_root, "synth|gpt-test", instance=instance)
        assert not rejected.success
        assert "[redacted]" in str(rejected.all_events)
        # Accepted, through faults whose errors are logged and recorded along the way.
        api_server.configure(
            ServerConfig(
                required_key=planted,
                faults={"429": 0.1, "500": 0.1, "drop": 0.05, "malformed": 0.05},
                retry_after_s=0.1,
            )
        )
        accepted = materialize_api(
            project, store_root, "synth|claude-test", instance=instance, progress_every_s=0.05
        )
        assert api_server.stats()["by_outcome"]["ok"] == 30
        assert accepted.success
        events = [
            str(record)
            for result in (rejected, accepted)
            for record in instance.all_logs(result.run_id)
        ]
    assert any("HTTP 401" in e for e in events)

    leaks = [
        str(path)
        for path in tmp_path.rglob("*")
        if path.is_file() and planted.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert not [e for e in events if planted in e]
    assert planted not in caplog.text
    captured = capfd.readouterr()
    assert planted not in captured.out and planted not in captured.err
    # The scan looked where the key would be: the run wrote Parquet, cache entries and an event log.
    assert list(store_root.rglob("*.parquet")) and list((store_root).rglob("*.json"))
    assert list((tmp_path / "dagster").rglob("*.db"))
