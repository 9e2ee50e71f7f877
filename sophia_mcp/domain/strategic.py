"""The sources the strategic query gathers its evidence from."""

from __future__ import annotations

from typing import Literal

SourceName = Literal["warehouse", "calls", "knowledge", "web"]
SOURCES: tuple[SourceName, ...] = ("warehouse", "calls", "knowledge", "web")
