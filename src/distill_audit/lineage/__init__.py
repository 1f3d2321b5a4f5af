"""Lineage: do teacher and student share a pretrained initialization?

Calling the package runs the Python API's `distill_audit.api.lineage`.
"""

from distill_audit.api import callable_package
from distill_audit.lineage.check import Evidence, LineageResult, check_lineage

__all__ = ["Evidence", "LineageResult", "check_lineage"]

callable_package(__name__)
