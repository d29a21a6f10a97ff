"""Shard bookkeeping shared by both runners: lineage order and numeric sequence numbers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botocore.exceptions import ClientError


def sequence_key(sequence_number: str) -> int:
    """Sequence numbers are decimal strings of varying length: compare them as integers, never as text."""
    if not sequence_number.isascii() or not sequence_number.isdigit():
        raise ValueError(f"not a sequence number: {sequence_number!r}")
    return int(sequence_number)


def readable_shards(shards: Iterable[Mapping[str, Any]], is_finished: Callable[[str], bool]) -> list[str]:
    """Ids of the shards to read now, in listing order.

    A child shard (after a split or merge) is read only once its parents are finished, so one key's
    records stay in order across a reshard; a parent no longer listed has expired and does not block.
    """
    listed = {shard["ShardId"] for shard in shards}
    ready = []
    for shard in shards:
        shard_id = shard["ShardId"]
        if is_finished(shard_id):
            continue
        parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
        if all(parent is None or parent not in listed or is_finished(parent) for parent in parents):
            ready.append(shard_id)
    return ready


def get_records_renewing(
    client: Any, iterator: str, limit: int, renew: Callable[[], str]
) -> tuple[dict[str, Any], str]:
    """GetRecords (Kinesis or DynamoDB Streams); an expired iterator (5 minutes idle) is renewed once.

    Returns the response and the iterator that produced it.
    """
    try:
        return client.get_records(ShardIterator=iterator, Limit=limit), iterator
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
            raise
    iterator = renew()
    return client.get_records(ShardIterator=iterator, Limit=limit), iterator
