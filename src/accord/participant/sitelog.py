"""The site log: what this site received, sent and refused, for its operator.

One JSON object per line, appended and flushed as it happens, so the file can be
followed (``tail -f``), grepped and loaded into any tool. Entries carry sizes and
digests, never parameter values or raw data: the log is safe to show an auditor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

__all__ = ["SiteLog"]

logger = logging.getLogger(__name__)


class SiteLog:
    """Appends events to a JSON-lines file (or only to the logger, without one)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._file = os.fdopen(fd, "a", encoding="utf-8")

    def record(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event; ``fields`` must be JSON values. Returns the entry."""
        entry = {"at": datetime.now(UTC).isoformat(), "event": event, **fields}
        line = json.dumps(entry, sort_keys=False, default=str)
        logger.info("%s", line)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
        return entry

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    @staticmethod
    def read(path: Path | str) -> list[dict[str, Any]]:
        """Every entry of a site log, oldest first."""
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
