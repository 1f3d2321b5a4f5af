"""The registry of report formats: one entry per format a scan can write.

A format is a file name and a renderer (`report dict -> text`), named by a dotted path
so this low module imports no renderer. `parquet` has no renderer: the pipeline writes
the per-sample table itself. A new format is one module with its `to_<format>` and one
`register_format(...)` line (below, or from a plugin before the scan runs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Renderer = Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Format:
    name: str
    filename: str
    renderer: str | Renderer | None  # "package.module:function", a callable, or None (written by the pipeline)

    def render(self, report: dict[str, Any]) -> str:
        fn = self.renderer
        if isinstance(fn, str):
            module, _, attr = fn.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        if fn is None:
            raise ValueError(f"format {self.name!r} is written by the pipeline, not rendered")
        return fn(report)


# Views the rest of the code reads; register_format keeps them current.
FORMATS: list[str] = []
SUFFIX: dict[str, str] = {}
_REGISTRY: dict[str, Format] = {}


def register_format(name: str, filename: str, renderer: str | Renderer | None) -> Format:
    if name in _REGISTRY:
        raise ValueError(f"report format {name!r} is registered twice")
    fmt = Format(name, filename, renderer)
    _REGISTRY[name] = fmt
    FORMATS.append(name)
    SUFFIX[name] = filename
    return fmt


def unregister_format(name: str) -> None:
    _REGISTRY.pop(name, None)
    if name in FORMATS:
        FORMATS.remove(name)
    SUFFIX.pop(name, None)


def get_format(name: str) -> Format | None:
    return _REGISTRY.get(name)


def rendered_formats() -> list[str]:
    """Formats `report` can re-render from a report.json (every one with a renderer)."""
    return [n for n, f in _REGISTRY.items() if f.renderer is not None]


register_format("json", "report.json", "distill_audit.report.build:dumps")
register_format("md", "report.md", "distill_audit.report.markdown:to_markdown")
register_format("html", "report.html", "distill_audit.report.html:to_html")
register_format("junit", "junit.xml", "distill_audit.report.junit:to_junit")
register_format("parquet", "samples.parquet", None)
