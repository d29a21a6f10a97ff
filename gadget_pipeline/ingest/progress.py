"""A dependency-free progress line on stderr (``\\r``-rewritten, throttled)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 28


def render_progress(done: int, total: int | None, elapsed: float, label: str) -> str:
    """One progress line: a bar when the total is known, otherwise a running count; plus the rate."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        filled = min(BAR_WIDTH, int(BAR_WIDTH * done / total))
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"{label} [{bar}] {done}/{total} ({rate:,.0f}/s)"
    return f"{label} {done:,} ({rate:,.0f}/s)"


class ProgressLine:
    """Rewrites one stderr line at most every ``interval`` seconds; ``close`` ends it with a newline."""

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None,
                 interval: float = 0.2) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.done = 0
        self._started = time.monotonic()
        self._last_render = 0.0
        self._width = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last_render >= self.interval:
            self._render(now)

    def _render(self, now: float) -> None:
        self._last_render = now
        line = render_progress(self.done, self.total, now - self._started, self.label)
        # Pad over a longer previous line with spaces: no terminal escapes in captured logs.
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def close(self) -> None:
        self._render(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()
