"""distill-audit: audit teacher-generated data for traits a student would absorb.

The Python API (docs/python-api.md): `from distill_audit import scan, inspect, lineage`.
They load on first use, so `import distill_audit` stays light (no torch, no typer).
"""

import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("distill-audit")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"

__all__ = ["__version__", "inspect", "lineage", "scan"]


_API_PACKAGES = ("scan", "lineage")


class _CallablePackage(types.ModuleType):
    """A subpackage (scan, lineage) that is also the API function of its name.

    `from distill_audit import scan` hands back the subpackage once anything has
    imported it (the import system sets it on this package), so the subpackage itself
    must answer the call.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from distill_audit.cli import api

        return getattr(api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


class _Package(types.ModuleType):
    """This package: makes scan and lineage callable when the import system attaches them."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API_PACKAGES and type(value) is types.ModuleType:
            value.__class__ = _CallablePackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _API_PACKAGES:
        import importlib

        return importlib.import_module(f"distill_audit.{name}")
    if name == "inspect":
        from distill_audit.cli.api import inspect

        return inspect
    raise AttributeError(f"module 'distill_audit' has no attribute {name!r}")
