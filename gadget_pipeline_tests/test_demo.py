"""`gadget-pipeline demo`: the whole product end to end, headless, on its own local AWS."""

from __future__ import annotations

from pathlib import Path

import pytest

from gadget_pipeline import local_aws
from gadget_pipeline.cli import main
from gadget_pipeline_tests.conftest import free_port


@pytest.mark.slow
def test_demo_runs_end_to_end_and_stops_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GADGET_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("GADGET_ENV", "local")
    monkeypatch.delenv("GADGET_AWS_ENDPOINT", raising=False)
    assert main(["demo", "--orders", "60", "--seed", "11", "--aws-port", str(free_port())]) == 0
    out = capsys.readouterr().out
    live = int(out.split("current state: ", 1)[1].split(" live orders", 1)[0])
    assert 0 < live <= 60
    assert "daily sales:" in out and "FAIL" not in out
    for check in ("order_id_is_unique", "current_state_reconciles_with_dynamodb", "no_failed_cdc_records"):
        assert f"PASS  {check}" in out
    assert local_aws.status()[0] == "stopped"  # the server it started is gone


def test_demo_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--orders", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
