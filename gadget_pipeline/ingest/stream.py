"""Both local runtimes in one loop: DynamoDB stream -> (pipe) -> Kinesis -> (Firehose) -> S3.

* ``run_stream``: until ``stop`` is set or Ctrl-C, printing throughput and lag periodically.
* ``drain_stream``: until everything written to the table so far is in S3 (the DynamoDB stream has
  nothing new, Kinesis is read to its end, then every buffer is flushed regardless of its interval).
* ``LivePipeline``: the generator (continuous) plus the stream in background threads, for ``make dev``.

Only for the local AWS: on AWS the managed pipe and delivery stream move the data, and a second,
local copy of them would deliver every event twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gadget_pipeline import config
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.ingest.firehose_runner import FirehoseRunner
from gadget_pipeline.ingest.pipe_runner import PipeRunner

LOGGER = logging.getLogger(__name__)

Progress = Callable[[str], None]
LOCK_FILE = "stream.lock"
IDLE_SLEEP_SECONDS = 0.1  # between polls when nothing moved (AWS Pipes polls a shard about 4x per second)


@dataclass(frozen=True)
class StreamSnapshot:
    """Counters and lag at one moment; ``describe`` renders the periodic progress line."""

    elapsed: float
    source_read: int  # DynamoDB stream records read by the pipe
    on_kinesis: int  # records the pipe delivered to Kinesis
    pipe_pending: int
    delivered: int  # transformed records written under the raw prefix
    failed: int  # records written under the error prefix
    dropped: int
    objects: int
    error_objects: int
    buffered: int
    oldest_buffered_age: float
    source_lag: float | None  # now - ApproximateCreationDateTime of the newest record read

    def describe(self, previous: StreamSnapshot | None = None) -> str:
        since = previous or StreamSnapshot(0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, None)
        seconds = max(self.elapsed - since.elapsed, 1e-9)
        in_rate = (self.source_read - since.source_read) / seconds
        out_rate = (self.delivered + self.failed - since.delivered - since.failed) / seconds
        lag = f", source lag {self.source_lag:.1f}s" if self.source_lag is not None else ""
        return (
            f"stream {self.elapsed:6.1f}s | in {self.source_read} ({in_rate:,.0f}/s) | "
            f"to S3 {self.delivered} ok, {self.failed} failed ({out_rate:,.0f}/s) in "
            f"{self.objects + self.error_objects} objects | pending: pipe {self.pipe_pending}, "
            f"firehose {self.buffered} (oldest {self.oldest_buffered_age:.1f}s){lag}"
        )


class LocalStream:
    """The pipe runner and the Firehose runner of one deployed stack, stepped together.

    After an exception the instance must be discarded; a new one resumes from the checkpoints.
    """

    def __init__(self, target: AwsTarget, outputs: Mapping[str, str], *,
                 state_dir: Path | None = None) -> None:
        if not target.is_local:
            raise config.ConfigError(
                "`stream` runs the local Pipes/Firehose runtimes for the local AWS; on AWS the deployed pipe "
                "and delivery stream move the data (set GADGET_ENV=local)"
            )
        self.state_dir = state_dir or config.state_dir()
        self.pipe = PipeRunner.for_pipe(target, outputs["PipeName"], state_dir=self.state_dir)
        self.firehose = FirehoseRunner.for_delivery_stream(target, outputs["DeliveryStreamName"],
                                                           state_dir=self.state_dir)
        self._started = time.monotonic()

    def step(self, *, force: bool = False) -> tuple[int, int]:
        """One round: pipe poll then Firehose poll. Returns (stream records read, Kinesis records read).

        ``force`` (draining) reads every shard now and sends partial pipe batches without waiting.
        """
        from_table = self.pipe.poll(force=force)
        from_kinesis = self.firehose.poll(eager=force)
        return from_table, from_kinesis

    def snapshot(self) -> StreamSnapshot:
        pipe, firehose = self.pipe.stats, self.firehose.stats
        lag = time.time() - pipe.last_source_time if pipe.last_source_time is not None else None
        return StreamSnapshot(
            elapsed=time.monotonic() - self._started,
            source_read=pipe.read,
            on_kinesis=pipe.delivered,
            pipe_pending=self.pipe.pending,
            delivered=firehose.delivered,
            failed=firehose.failed,
            dropped=firehose.dropped,
            objects=firehose.objects,
            error_objects=firehose.error_objects,
            buffered=self.firehose.buffered,
            oldest_buffered_age=self.firehose.oldest_buffered_age(),
            source_lag=lag,
        )

    def _sleep_until_due(self, stop: threading.Event | None) -> bool:
        """Sleep until a buffer falls due or the idle period ends; True when ``stop`` was set."""
        deadlines = [d for d in (self.pipe.next_deadline(), self.firehose.next_deadline()) if d is not None]
        timeout = IDLE_SLEEP_SECONDS
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        if stop is not None:
            return stop.wait(timeout)
        time.sleep(timeout)
        return False

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        drain: bool = False,
        progress: Progress | None = None,
        report_every: float = 5.0,
        timeout: float | None = None,
    ) -> StreamSnapshot:
        """Loop until ``stop`` (or, with ``drain``, until everything written so far is in S3)."""
        deadline = time.monotonic() + timeout if timeout is not None else None
        last_report_at = time.monotonic()
        last_report: StreamSnapshot | None = None
        with exclusive_lock(self.state_dir / LOCK_FILE):
            while stop is None or not stop.is_set():
                from_table, from_kinesis = self.step(force=drain)
                if drain and from_table == 0 and from_kinesis == 0 and self.pipe.pending == 0 \
                        and self.pipe.caught_up() and self.firehose.caught_up():
                    self.firehose.flush()
                    break
                now = time.monotonic()
                if progress is not None and now - last_report_at >= report_every:
                    current = self.snapshot()
                    progress(current.describe(last_report))
                    last_report, last_report_at = current, now
                if deadline is not None and now > deadline:
                    raise TimeoutError(f"the stream did not finish within {timeout:.0f}s")
                if from_table == 0 and from_kinesis == 0 and self._sleep_until_due(stop):
                    break
        return self.snapshot()


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """One stream loop per state folder: two would both deliver every event (and race on checkpoints)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise config.ConfigError(
                f"another local stream (pid {owner}) is already running on {path.parent}; stop it first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_stream(
    target: AwsTarget,
    outputs: Mapping[str, str],
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = print,
    report_every: float = 5.0,
) -> StreamSnapshot:
    """Run the local pipe and Firehose until ``stop`` is set (or Ctrl-C); returns the final counters."""
    stream = LocalStream(target, outputs)
    try:
        return stream.run(stop=stop, progress=progress, report_every=report_every)
    except KeyboardInterrupt:
        LOGGER.info("stream_interrupted")
        return stream.snapshot()


def drain_stream(
    target: AwsTarget,
    outputs: Mapping[str, str],
    *,
    progress: Progress | None = print,
    report_every: float = 2.0,
    timeout: float | None = None,
) -> StreamSnapshot:
    """Deliver everything written to the table so far to S3, then return the counters."""
    return LocalStream(target, outputs).run(drain=True, progress=progress, report_every=report_every,
                                            timeout=timeout)


class LivePipeline:
    """``make dev``: continuous orders and the local stream, each in a background thread.

    ``start()`` returns at once; ``stop()`` ends both and re-raises a generator failure. A failing stream
    is rebuilt after a pause (it resumes from its checkpoints), so a hiccup does not end a dev session.
    """

    RESTART_PAUSE_SECONDS = 5.0

    def __init__(self, target: AwsTarget, outputs: Mapping[str, str], *, rate: float = 20.0,
                 seed: int | None = None, progress: Progress | None = print,
                 report_every: float = 10.0) -> None:
        if rate <= 0:
            raise ValueError("the live pipeline needs a positive rate (operations per second)")
        self.target = target
        self.outputs = dict(outputs)
        self.rate = rate
        self.seed = seed
        self.progress = progress
        self.report_every = report_every
        self.stop_event = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._generate, name="gadget-generator", daemon=True),
            threading.Thread(target=self._stream, name="gadget-stream", daemon=True),
        ]

    def start(self) -> LivePipeline:
        for thread in self._threads:
            thread.start()
        return self

    def _generate(self) -> None:
        from gadget_pipeline.ingest.generator import generate

        try:
            generate(self.target, self.outputs, orders=None, seed=self.seed, rate=self.rate, continuous=True,
                     stop=self.stop_event, show_progress=False)
        except BaseException as error:  # noqa: BLE001 - handed to stop() in the caller's thread
            LOGGER.exception("live_generator_failed")
            self._errors.append(error)
            self.stop_event.set()

    def _stream(self) -> None:
        while not self.stop_event.is_set():
            try:
                LocalStream(self.target, self.outputs).run(stop=self.stop_event, progress=self.progress,
                                                           report_every=self.report_every)
            except Exception as error:  # noqa: BLE001 - rebuilt from checkpoints after a pause
                LOGGER.warning("live_stream_failed error=%s; restarting from checkpoints", error)
                if self.progress is not None:
                    self.progress(f"stream failed ({error}); restarting in {self.RESTART_PAUSE_SECONDS:.0f}s")
                self.stop_event.wait(self.RESTART_PAUSE_SECONDS)

    def stop(self, timeout: float = 30.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> LivePipeline:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
