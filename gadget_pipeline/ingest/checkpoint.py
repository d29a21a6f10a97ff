"""Per-shard read positions that survive a crash: one JSON file, replaced atomically on every commit.

A checkpoint is always the sequence number of the last record whose delivery downstream has been
confirmed, so a restart re-reads (never skips) anything in flight: at-least-once delivery.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger(__name__)


class CheckpointStore:
    """Shard id -> sequence number for one *scope* (a source identity such as a stream ARN).

    The file may hold several scopes; a redeployed source has a new scope key, so it starts fresh
    instead of resuming from positions of a stream that no longer exists.
    """

    def __init__(self, path: Path, scope: str) -> None:
        self.path = path
        self.scope = scope
        self._document = self._load()
        self._positions: dict[str, dict[str, Any]] = self._document.setdefault(scope, {})

    def _load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"checkpoint file {self.path} is corrupt ({error}); delete it to start over") \
                from None
        if not isinstance(document, dict):
            raise ValueError(f"checkpoint file {self.path} is not a JSON object; delete it to start over")
        return document

    def sequence_number(self, shard_id: str) -> str | None:
        entry = self._positions.get(shard_id)
        return None if entry is None else entry.get("sequence_number")

    def is_finished(self, shard_id: str) -> bool:
        """True once a closed shard has been read to its end and everything from it delivered."""
        entry = self._positions.get(shard_id)
        return bool(entry and entry.get("finished"))

    def commit(self, positions: dict[str, str], finished: set[str] | frozenset[str] = frozenset()) -> None:
        """Record delivered positions (and finished shards) and persist them in one atomic replace."""
        if not positions and not finished:
            return
        for shard_id, sequence_number in positions.items():
            self._positions.setdefault(shard_id, {})["sequence_number"] = sequence_number
        for shard_id in finished:
            self._positions.setdefault(shard_id, {})["finished"] = True
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory, then rename: a reader (or a crash) sees the old file or the new one, never half.
        handle, temporary = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(self._document, stream, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        LOGGER.debug("checkpoint_saved path=%s scope=%s shards=%d", self.path, self.scope,
                     len(self._positions))
