"""Benchmark: the local CDC pipeline, DynamoDB write -> S3 object, on its own moto server.

Run: ``python bench/bench_pipeline.py [--events 20000] [--rate 1100] [--mix inserts|lifecycle] [--profile]``

Starts a moto server with ``gadget_pipeline.local_aws`` (temporary GADGET_STATE_DIR, free port), deploys
the stack with ``BufferingIntervalSeconds=1``, and runs the order generator (a thread, paced at
``--rate`` operations/s, each write's send time recorded) next to the local stream (pipe runner +
Firehose runner + the real handler, another thread) until every CDC event is in S3. Then it maps each
raw event back to the write that caused it (per order, k-th write = k-th stream event) and reports:

* sustained throughput: events written to S3 per second while the generator was writing (steady
  window, after a 2 s warm-up), and the end-to-end average;
* write-to-S3 latency per event (S3 object written - DynamoDB write sent): p50 / p95 / max;
* where the time goes: wall time per AWS call type and in the handler, in the stream thread; CPU
  seconds of the moto server and of this process (``--profile``: cProfile of the stream thread).

Targets: >= 1,000 events/s and p95 < 3 s. ``--mix inserts`` (default) writes inserts and deletes
(batch_write_item); ``lifecycle`` adds updates (update_item, one call each: moto's slowest write).
Always exits 0 unless ``--strict``: it is a report, not a gate. Stops the server it started.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing
import os
import pstats
import socket
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gadget_pipeline import local_aws  # noqa: E402
from gadget_pipeline.aws import AwsTarget  # noqa: E402
from gadget_pipeline.deploy.local import deploy_local  # noqa: E402
from gadget_pipeline.ingest.firehose_runner import BufferedRecord  # noqa: E402
from gadget_pipeline.ingest.generator import LIVE, LifecycleSettings, Operation, generate  # noqa: E402
from gadget_pipeline.ingest.stream import LocalStream  # noqa: E402

TARGET_EVENTS_PER_SECOND = 1000.0
TARGET_P95_SECONDS = 3.0
WARM_UP_SECONDS = 2.0
MIXES = {
    "inserts": LifecycleSettings(update_share=0.0, cancel_share=0.25,
                                 first_change_after=LIVE.first_change_after,
                                 next_change_after=LIVE.next_change_after),
    "lifecycle": LIVE,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CallTimer:
    """Wall time and count per (thread, service.operation), from botocore's before/after-call events."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self._local = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before, unique_id=f"bench-before-{id(client)}")
        client.meta.events.register("after-call", self._after, unique_id=f"bench-after-{id(client)}")

    def _before(self, event_name: str, **_: Any) -> None:
        self._local.started = time.perf_counter()

    def _after(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        key = (threading.current_thread().name, f"{service}.{operation}")
        self.seconds[key] += time.perf_counter() - self._local.started
        self.calls[key] += 1


class TimedStream(LocalStream):
    """The stream loop with its idle sleeps timed, so 'our code' = loop - calls - handler - sleep."""

    slept = 0.0

    def _sleep_until_due(self, stop: threading.Event | None) -> bool:
        started = time.perf_counter()
        try:
            return super()._sleep_until_due(stop)
        finally:
            self.slept += time.perf_counter() - started


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def run(args: argparse.Namespace) -> bool:
    state_dir = tempfile.mkdtemp(prefix="gadget-bench-")
    os.environ["GADGET_STATE_DIR"] = state_dir
    module = "moto.server" if args.stock_moto else local_aws.SERVER_MODULE
    server, _ = local_aws.up(port=free_port(), server_module=module)
    command = Path(f"/proc/{server.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    print(f"moto server {server.endpoint} (pid {server.pid}: {command}), state {state_dir}")
    try:
        return measure(AwsTarget.local(server.endpoint), server.pid, args)
    finally:
        print(local_aws.down())


def write_orders(endpoint: str, outputs: dict[str, str], orders: int, seed: int | None, rate: float, mix: str,
                 results: Any) -> None:
    """The generator, in its own process as in real use (`generate` and `stream` are separate commands)."""
    target = AwsTarget.local(endpoint)
    timer = CallTimer()
    timer.attach(target.client("dynamodb"))
    writes: dict[str, list[float]] = defaultdict(list)  # order id -> send time of each of its writes

    def on_written(operations: Sequence[Operation], sent_at: float) -> None:
        for operation in operations:
            writes[operation.order_id].append(sent_at)

    cpu = time.process_time()
    summary = generate(target, outputs, orders=orders, seed=seed, rate=rate, continuous=True,
                       show_progress=False, on_written=on_written, settings=MIXES[mix])
    results.put({"operations": summary.operations, "writes": dict(writes), "cpu": time.process_time() - cpu,
                 "seconds": dict(timer.seconds), "calls": dict(timer.calls)})


def measure(target: AwsTarget, server_pid: int, args: argparse.Namespace) -> bool:
    parameters = {"BufferingIntervalSeconds": "1"}
    outputs = deploy_local(target, parameters=parameters, progress=lambda _: None).outputs
    timer = CallTimer()
    for service in ("dynamodbstreams", "kinesis", "s3"):
        timer.attach(target.client(service))
    stream = TimedStream(target, outputs)
    handler_seconds = [0.0]
    function = stream.firehose.function
    assert function is not None

    def timed_handler(event: dict, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return function.handler(event, context)
        finally:
            handler_seconds[0] += time.perf_counter() - started

    stream.firehose.function = replace(function, handler=timed_handler)
    flushes: list[tuple[list[BufferedRecord], float]] = []
    stream.firehose.on_flush = lambda result, records: flushes.append((list(records), result.written_at))
    settings = MIXES[args.mix]
    orders = max(1, round(args.events / settings.expected_operations_per_order()))
    stop = threading.Event()
    stream_cpu = [0.0]
    profiler = cProfile.Profile() if args.profile else None

    def stream_thread() -> None:
        started = time.thread_time()
        if profiler is not None:
            profiler.enable()
        try:
            stream.run(stop=stop, progress=None)
        finally:
            if profiler is not None:
                profiler.disable()
            stream_cpu[0] = time.thread_time() - started

    # Several generator runs (own seeds, so own run ids) write side by side: one synchronous writer waits
    # on every call and cannot keep moto busy on its own.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    base_seed = args.seed if args.seed is not None else int(time.time())
    writers = [
        context.Process(target=write_orders, name=f"generator-{number}",
                        args=(target.endpoint_url, outputs, orders // args.writers, base_seed + number,
                              args.rate / args.writers, args.mix, results))
        for number in range(args.writers)
    ]
    moto_cpu_before, own_cpu_before = process_cpu_seconds(server_pid), time.process_time()
    streamer = threading.Thread(target=stream_thread, name="stream")
    started = time.time()
    streamer.start()
    for writer in writers:
        writer.start()
    reports = [results.get() for _ in writers]  # each child reports when it has written everything
    for writer in writers:
        writer.join()
    writing_ended = time.time()
    writes: dict[str, list[float]] = {}
    for report in reports:
        writes.update(report["writes"])
        for (_, operation), seconds in report["seconds"].items():
            timer.seconds[("generator", operation)] += seconds
            timer.calls[("generator", operation)] += report["calls"][(_, operation)]
    written = [sum(report["operations"] for report in reports)]
    written_by = {"cpu": sum(report["cpu"] for report in reports)}
    deadline = time.monotonic() + 120
    while stream.firehose.stats.delivered + stream.firehose.stats.failed < written[0]:
        if time.monotonic() > deadline or not streamer.is_alive():
            print("the stream did not deliver every event within 120 s after the last write")
            break
        time.sleep(0.05)
    stop.set()
    streamer.join()
    wall = time.time() - started
    moto_cpu = process_cpu_seconds(server_pid) - moto_cpu_before
    own_cpu = time.process_time() - own_cpu_before

    # Map every delivered event back to its write: an order's k-th stream event is its k-th write.
    delivered_at: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for records, written_at in flushes:
        for record in records:
            event = json.loads(record.data)
            delivered_at[event["dynamodb"]["Keys"]["order_id"]["S"]].append(
                (int(event["dynamodb"]["SequenceNumber"]), written_at))
    latencies, s3_times = [], []
    for order_id, deliveries in delivered_at.items():
        for (_, written_at), sent_at in zip(sorted(deliveries), writes[order_id], strict=False):
            latencies.append(written_at - sent_at)
            s3_times.append(written_at)
    events = len(latencies)
    first_write = min(min(times) for times in writes.values())
    last_write = max(max(times) for times in writes.values())
    window = (first_write + WARM_UP_SECONDS, last_write)
    in_window = sum(1 for moment in s3_times if window[0] <= moment <= window[1])
    sustained = in_window / max(window[1] - window[0], 1e-9)
    average = events / max(max(s3_times) - first_write, 1e-9)
    write_rate = written[0] / max(last_write - first_write, 1e-9)
    p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)

    print(f"\n{written[0]} CDC events ({args.mix} mix, {orders} orders) written at {write_rate:,.0f}/s "
          f"(asked {args.rate:g}/s) by {args.writers} generator processes; {events} delivered; "
          f"wall {wall:.1f}s "
          f"(writing ended after {writing_ended - started:.1f}s)")
    print(f"sustained throughput : {sustained:8,.0f} events/s   "
          f"(steady window after {WARM_UP_SECONDS:.0f}s warm-up; "
          f"end-to-end average {average:,.0f}/s)")
    print(f"write -> S3 latency  : p50 {p50:.2f}s   p95 {p95:.2f}s   max {max(latencies):.2f}s   "
          f"(buffer interval 1 s, {len(flushes)} flushes)")
    report_time(timer, stream, handler_seconds[0], stream_cpu[0], moto_cpu, own_cpu, written_by["cpu"], wall,
                events)
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
        print("\ncProfile of the stream thread (by own time):\n" + text.getvalue())
    throughput_ok = sustained >= TARGET_EVENTS_PER_SECOND
    latency_ok = p95 < TARGET_P95_SECONDS
    delivered_ok = events == written[0]
    print(f"\nthroughput >= {TARGET_EVENTS_PER_SECOND:,.0f}/s: {'PASS' if throughput_ok else 'FAIL'}   "
          f"p95 < {TARGET_P95_SECONDS:.0f}s: {'PASS' if latency_ok else 'FAIL'}   "
          f"every event delivered: {'PASS' if delivered_ok else 'FAIL'}")
    return throughput_ok and latency_ok and delivered_ok


def report_time(timer: CallTimer, stream: TimedStream, handler: float, stream_cpu: float, moto_cpu: float,
                own_cpu: float, writer_cpu: float, wall: float, events: int) -> None:
    per_event = 1000.0 / max(events, 1)
    print("\nwhere the time goes (wall seconds; ms per delivered event):")
    for thread in ("generator", "stream"):
        rows = sorted(((op, s) for (name, op), s in timer.seconds.items() if name == thread),
                      key=lambda row: -row[1])
        for operation, seconds in rows:
            calls = timer.calls[(thread, operation)]
            print(f"  {thread:9} {operation:32} {seconds:7.2f}s  {seconds * per_event:6.3f} ms  "
                  f"({calls} calls)")
    calls_in_stream = sum(s for (name, _), s in timer.seconds.items() if name == "stream")
    ours = wall - calls_in_stream - handler - stream.slept
    print(f"  stream    {'handler (in-process)':32} {handler:7.2f}s  {handler * per_event:6.3f} ms")
    print(f"  stream    {'idle (waiting for data/buffers)':32} {stream.slept:7.2f}s")
    ours = max(ours, 0.0)
    print(f"  stream    {'runners (our code, GIL waits)':32} {ours:7.2f}s  {ours * per_event:6.3f} ms")
    print(f"CPU seconds: moto server {moto_cpu:.1f} ({moto_cpu * per_event:.2f} ms/event), stream process "
          f"{own_cpu:.1f} (stream thread {stream_cpu:.1f}, {stream_cpu * per_event:.2f} ms/event), generator "
          f"process {writer_cpu:.1f}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="CDC events to write (default 20000)")
    parser.add_argument("--rate", type=float, default=1100.0, help="generator operations/s (0 = unthrottled)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="inserts")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--writers", type=int, default=2, help="generator processes side by side (default 2)")
    parser.add_argument("--profile", action="store_true", help="cProfile the stream thread")
    parser.add_argument("--stock-moto", action="store_true",
                        help="run stock moto.server, not gadget_pipeline.moto_fastpath (to compare)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    passed = run(args)
    return 1 if args.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
