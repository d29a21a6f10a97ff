"""Sensor tick cost against history: S3 calls, keys listed and seconds per tick at 1k, 10k, 100k objects.

Starts its own moto server, deploys the stack, fills old hour folders with Firehose-named objects, puts 10
new objects in the current hour, and runs one real `raw_cdc_files_sensor` tick at each history size.
Target: flat (the same calls and keys at every size).  Run: python bench/bench_sensor.py [--sizes ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dagster as dg

from gadget_pipeline import local_aws, raw_objects
from gadget_pipeline.aws import AwsTarget
from gadget_pipeline.deploy.local import deploy_local
from gadget_pipeline.resources import AwsStackResource
from gadget_pipeline.sensors import build_sensors

LINE = b'{"event_id":"e","order_id":"o","sequence_number":"1"}\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def object_key(template: str, moment: datetime, n: int) -> str:
    stamp = moment.strftime("%Y-%m-%d-%H-%M-%S")
    return f"{raw_objects.expand_timestamp_prefix(template, moment)}kinesis-gadget-data-s3-1-{stamp}-{n:08d}"


def put_all(s3, bucket: str, keys: list[str]) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=LINE), keys))


def tick(endpoint: str, now: datetime) -> tuple[dict[str, int], float]:
    context = dg.build_sensor_context(resources={"stack": AwsStackResource(endpoint_url=endpoint)})
    started = time.perf_counter()
    result = build_sensors("local")[0](context)
    seconds = time.perf_counter() - started
    metadata = result.asset_events[0].metadata
    return {key: metadata[key].value for key in ("new_objects", "s3_list_calls", "s3_keys_listed")}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    args = parser.parse_args()
    os.environ["GADGET_STATE_DIR"] = tempfile.mkdtemp(prefix="gadget-bench-sensor-")
    server, _ = local_aws.up(port=free_port())
    try:
        target = AwsTarget.local(server.endpoint)
        outputs = deploy_local(target, progress=lambda _: None).outputs
        os.environ["GADGET_AWS_ENDPOINT"] = server.endpoint
        s3, bucket = target.client("s3"), outputs["BucketName"]
        template = AwsStackResource(endpoint_url=server.endpoint).raw_prefix_template()
        now = datetime.now(UTC)
        new_keys = [object_key(template, now, n) for n in range(10)]
        put_all(s3, bucket, new_keys)
        history = 0
        rows = []
        for size in sorted(args.sizes):
            started = time.perf_counter()
            # History lives in hour folders 3 to 10 days old: outside the sensor's lookback window.
            put_all(s3, bucket, [object_key(template, now - timedelta(days=3, hours=n % 168), n)
                                 for n in range(history, size)])
            print(f"history {size:>7,} objects (filled in {time.perf_counter() - started:.0f}s, not timed)")
            history = size
            counts, seconds = tick(server.endpoint, now)
            rows.append((size, counts, seconds))
        print(f"\n{'history':>9} {'new':>5} {'S3 list calls':>14} {'keys listed':>12} {'tick seconds':>13}")
        for size, counts, seconds in rows:
            print(f"{size:>9,} {counts['new_objects']:>5} {counts['s3_list_calls']:>14} "
                  f"{counts['s3_keys_listed']:>12} {seconds:>13.3f}")
        flat = len({(c["s3_list_calls"], c["s3_keys_listed"]) for _, c, _ in rows}) == 1
        ratio = rows[-1][2] / rows[0][2]
        print(f"\ncalls and keys listed identical at every size: {'PASS' if flat else 'FAIL'}; "
              f"tick time at {rows[-1][0]:,} vs {rows[0][0]:,}: {ratio:.2f}x")
    finally:
        print(local_aws.down())


if __name__ == "__main__":
    main()
