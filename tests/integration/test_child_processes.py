"""Decoding and GIL-bound engines run in child processes: same results as in-process,
errors come back as the job's own, and a child that dies or a job that is stopped costs
the task a retry or a release, never the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reach_devkit.emulator import KalturaEmulator
from reach_devkit.emulator.vendor_setup import Vendor
from reach_vendor.engines.base import (
    ProcessingCancelled,
    ProcessingRequest,
    ProcessorUnavailable,
    process_detached,
)
from reach_vendor.engines.local.pocketsphinx import PocketSphinxProcessor
from reach_vendor.worker.child_processes import ChildDied, ChildPool
from reach_vendor.worker.media import MediaError, decode_to_pcm
from tests.support.daemon import make_daemon, running, wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "reach_devkit" / "samples" / "thanks.mp3"


@pytest.fixture
def pool() -> Any:
    children = ChildPool(2)
    yield children
    children.close()


def _meet(mine: str, theirs: str) -> str:
    """Runs in a child: say we started, then wait for the other job to say so too."""
    Path(mine).touch()
    deadline = time.monotonic() + 20
    while not Path(theirs).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the other job never ran beside this one")
        time.sleep(0.01)
    return f"{os.getpid()}"


def test_decoding_in_a_child_gives_the_same_audio(pool: ChildPool, tmp_path: Path) -> None:
    here, there = tmp_path / "here.pcm", tmp_path / "there.pcm"
    expected = decode_to_pcm(SAMPLE, here)
    never = threading.Event()
    assert pool.run("media decoder", decode_to_pcm, (SAMPLE, there), never) == expected
    assert there.read_bytes() == here.read_bytes()
    assert pool.pids() and pool.pids()[0] != os.getpid()


def test_a_warm_pool_has_its_children_before_the_first_job(
    pool: ChildPool, tmp_path: Path
) -> None:
    pool.warm(wait=True)
    started = sorted(pool.pids())
    assert len(started) == 2 and os.getpid() not in started
    assert all(_alive(pid) for pid in started)
    never = threading.Event()
    pool.run("media decoder", decode_to_pcm, (SAMPLE, tmp_path / "a.pcm"), never)
    assert sorted(pool.pids()) == started  # the job ran on one of them, none was added


def test_a_job_during_the_warm_up_takes_a_warmed_child(pool: ChildPool, tmp_path: Path) -> None:
    pool.warm()  # in the background: the job below comes while it runs
    never = threading.Event()
    pool.run("media decoder", decode_to_pcm, (SAMPLE, tmp_path / "a.pcm"), never)
    assert len(pool.pids()) == 2  # the warm-up's two, no third started beside them


def test_a_started_daemon_has_its_decoders_before_any_task(
    tmp_path: Path, emulator: KalturaEmulator, vendor: Vendor
) -> None:
    """The first task after a (re)start does not wait ~2 s for the fork server's imports."""
    daemon = make_daemon(tmp_path, emulator, vendor, polling={"interval_s": 3600})
    assert emulator.tasks() == []  # the children come from the start, not from a task
    with running(daemon):
        wait_for(
            lambda: len(daemon.pipeline.children.pids()) == daemon.pipeline.children.size,
            30,
            "the decoder children to start",
        )


def test_the_jobs_own_error_comes_back_and_the_child_is_kept(
    pool: ChildPool, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not media" * 100)
    never = threading.Event()
    with pytest.raises(MediaError, match="cannot decode media"):
        pool.run("media decoder", decode_to_pcm, (junk, tmp_path / "a.pcm"), never)
    (pid,) = pool.pids()
    pool.run("media decoder", decode_to_pcm, (SAMPLE, tmp_path / "b.pcm"), never)
    assert pool.pids() == [pid]
    assert not (tmp_path / "a.pcm").exists() and not (tmp_path / "a.pcm.part").exists()


def test_a_child_killed_mid_job_is_a_retryable_error_and_is_replaced(
    pool: ChildPool, tmp_path: Path
) -> None:
    never = threading.Event()
    errors: list[BaseException] = []

    def job() -> None:
        try:
            pool.run("media decoder", time.sleep, (60,), never)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=job)
    worker.start()
    wait_for(lambda: bool(pool.pids(busy=True)), 20, "the job to start")
    (pid,) = pool.pids(busy=True)
    os.kill(pid, signal.SIGKILL)
    worker.join(10)
    assert not worker.is_alive()
    (error,) = errors
    assert isinstance(error, ChildDied) and isinstance(error, ProcessorUnavailable)
    assert str(error) == "the media decoder process stopped (killed by SIGKILL) on this task"
    # The next job gets a new child.
    assert pool.run("media decoder", decode_to_pcm, (SAMPLE, tmp_path / "c.pcm"), never) > 5
    assert pid not in pool.pids()


def test_stopping_a_job_kills_its_child_at_once(pool: ChildPool) -> None:
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ProcessingCancelled):
        pool.run("pocketsphinx engine", time.sleep, (60,), stop)
    assert time.monotonic() - started < 5
    assert pool.pids() == [] and pool.pids(busy=True) == []


def test_two_jobs_run_side_by_side(pool: ChildPool, tmp_path: Path) -> None:
    """What a GIL-bound engine gets from the pool: one core per task, not turns on one."""
    never = threading.Event()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    results: list[str] = []
    other = threading.Thread(target=lambda: results.append(pool.run("job", _meet, (b, a), never)))
    other.start()
    results.append(pool.run("job", _meet, (a, b), never))
    other.join(30)
    assert len(set(results)) == 2  # two different processes, at the same time


def test_pocketsphinx_is_run_in_a_child_on_the_detached_request(
    pool: ChildPool, tmp_path: Path
) -> None:
    pcm = tmp_path / "thanks.pcm"
    duration = decode_to_pcm(SAMPLE, pcm)
    engine = PocketSphinxProcessor()
    assert engine.holds_gil
    request = ProcessingRequest(audio_path=pcm, duration_s=duration, language="English")
    in_process = engine.process(request)
    in_child = pool.run(
        "pocketsphinx engine", process_detached, (engine, request.detached()), request.cancel
    )
    assert in_child == in_process and in_child.words


def test_waiting_for_a_free_child_gives_way_to_stop() -> None:
    """More workers than cores wait for a child; a stopping daemon must not wait with them."""
    pool = ChildPool(1)
    first_stop, second_stop = threading.Event(), threading.Event()
    first = threading.Thread(
        target=lambda: pytest.raises(
            ProcessingCancelled, pool.run, "job", time.sleep, (60,), first_stop
        )
    )
    first.start()
    try:
        wait_for(lambda: bool(pool.pids(busy=True)), 20, "the first job to start")
        threading.Timer(0.5, second_stop.set).start()
        started = time.monotonic()
        with pytest.raises(ProcessingCancelled):
            pool.run("job", time.sleep, (0,), second_stop)
        assert time.monotonic() - started < 5
    finally:
        first_stop.set()
        first.join(10)
        pool.close()
    assert not first.is_alive()


def test_a_child_is_replaced_after_max_jobs(tmp_path: Path) -> None:
    pool = ChildPool(1, max_jobs=2)
    never = threading.Event()
    try:
        pids = []
        for _ in range(3):
            pids.append(pool.run("job", _meet, (str(tmp_path / "x"), str(tmp_path / "x")), never))
        assert pids[0] == pids[1] != pids[2]
    finally:
        pool.close()


def test_a_remote_services_text_is_aligned_through_run_engine(
    pool: ChildPool, tmp_path: Path
) -> None:
    """Plain text from a remote service is aligned by pocketsphinx; through `run_engine` the
    daemon runs that in a child, like any GIL-bound engine, not on the worker thread."""
    from reach_vendor.engines.remote.transcripts import align_text

    pcm = tmp_path / "thanks.pcm"
    duration = decode_to_pcm(SAMPLE, pcm)
    in_children: list[int] = []

    def run_engine(engine: Any, request: ProcessingRequest) -> Any:
        in_children.append(request.service_feature)
        return pool.run("engine", process_detached, (engine, request.detached()), request.cancel)

    request = ProcessingRequest(
        audio_path=pcm, duration_s=duration, language="English", run_engine=run_engine
    )
    spoken = PocketSphinxProcessor().process(request).text
    aligned = align_text(spoken, request, "remote_transcription")
    assert in_children == [3]  # ALIGNMENT, in the pool's child
    assert aligned.text == spoken and aligned.engine == "remote_transcription"
    assert all(w.end > w.start for w in aligned.words)


def test_a_child_orphaned_mid_job_exits_without_a_traceback() -> None:
    """The daemon SIGKILLed while a child decodes: the child finishes its job, finds nobody
    to answer and exits quietly (it printed a BrokenPipeError traceback per child)."""
    parent = textwrap.dedent(
        """
        import threading, time
        from reach_vendor.worker.child_processes import ChildPool
        pool = ChildPool(1)
        job = ("media decoder", time.sleep, (1.0,), threading.Event())
        threading.Thread(target=pool.run, args=job, daemon=True).start()
        while not pool.pids(busy=True):
            time.sleep(0.01)
        print(pool.pids(busy=True)[0], flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    proc.kill()
    # The child and the fork server share the parent's stderr: its end comes once they
    # have both exited too.
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == -signal.SIGKILL
    text = err.decode(errors="replace")
    assert "Traceback" not in text, text
    assert text.count("\n") <= 1, text
    wait_for(lambda: not _alive(child), 5, "the orphaned child to exit")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_child_does_not_import_again_what_the_parent_s_main_module_imports(
    tmp_path: Path,
) -> None:
    """multiprocessing runs the parent's main module again in every child it starts; the
    benches' modules import the emulator and more (0.7 s and ~50 MB a child), which the
    daemon's first decodes waited for. Imported once by the fork server, they cost a
    child nothing. `heavy` stands for those imports and logs each process that imports it."""
    log = tmp_path / "imported-by"
    (tmp_path / "heavy.py").write_text(
        f"import os\nwith open({str(log)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
    )
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "embedder.py").write_text(
        textwrap.dedent(
            """
            import os, threading, time
            import heavy
            from reach_vendor.worker.child_processes import ChildPool

            if __name__ == "__main__":
                pool = ChildPool(2)
                pool.warm(wait=True)
                jobs = [threading.Thread(target=pool.run,
                                         args=("job", time.sleep, (1.0,), threading.Event()))
                        for _ in range(2)]
                for job in jobs:
                    job.start()
                while len(pool.pids(busy=True)) < 2:
                    time.sleep(0.01)
                children = pool.pids(busy=True)
                for job in jobs:
                    job.join()
                print(os.getpid(), *children)
                pool.close()
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "app.embedder"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parent, *children = (int(p) for p in done.stdout.split())
    importers = [int(p) for p in log.read_text().split()]
    assert len(children) == 2 and parent in importers
    assert not set(children) & set(importers)
    assert len(importers) == 2  # the parent, and the fork server once for every child
    assert done.stderr == ""  # runpy warns in each child where the main module is preloaded
