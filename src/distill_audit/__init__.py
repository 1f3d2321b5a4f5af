"""distill-audit: audit teacher-generated data for traits a student would absorb.

The Python API (docs/python-api.md): `from distill_audit import scan, inspect, lineage`.
They load on first use, so `import distill_audit` stays light (no torch, no typer).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("distill-audit")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__", "inspect", "lineage", "scan"]


def __getattr__(name: str):
    # scan and lineage are also subpackages, made callable (api.callable_package); inspect is a function.
    if name in ("scan", "lineage"):
        import importlib

        return importlib.import_module(f"distill_audit.{name}")
    if name == "inspect":
        from distill_audit.api import inspect

        return inspect
    raise AttributeError(f"module 'distill_audit' has no attribute {name!r}")
