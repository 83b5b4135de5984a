"""Chaos, small enough for CI: the real daemon process (no-op processor) against an
emulator that throws 5xx, drops and delays answers, fails requests, expires app-token
sessions and has customers abort tasks, while the daemon is SIGKILLed and restarted.
Whatever happens, no task is lost and no task gets two captions.
`bench/chaos.py` runs the same at a larger scale with parameters on the command line."""

from __future__ import annotations

from pathlib import Path

from bench.chaos import ChaosParams, run_chaos


def test_daemon_survives_faults_and_kills_without_losing_or_duplicating(
    tmp_path: Path,
) -> None:
    params = ChaosParams(
        tasks=12,
        seed=11,
        workers=2,
        kill_every_s=2.5,
        chaos_s=15,
        settle_s=35,
        http500=0.06,
        drop=0.04,
        drop_after=0.05,
        delay=0.02,
        error=0.01,
        delay_s=2.5,
        abort_share=0.15,
        expire_sessions=2,
        short_key_share=0.3,
        processor_delay_s=1.0,
    )
    report = run_chaos(params, tmp_path)
    summary = {k: v for k, v in vars(report).items() if k != "params"}
    assert report.kills >= 1 and sum(report.faults.values()) > 0, summary
    assert report.lost == 0, summary
    assert report.duplicates == 0 and report.duplicate_attachments == 0, summary
    assert report.wrong_output == 0, summary
    assert report.delivered + report.errored + report.aborted == report.tasks, summary
    assert report.delivered > 0, summary
