"""distill-audit: audit teacher-generated data for traits a student would absorb."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("distill-audit")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"
