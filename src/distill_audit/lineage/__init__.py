"""Lineage: do teacher and student share a pretrained initialization?"""

from distill_audit.lineage.check import Evidence, LineageResult, check_lineage

__all__ = ["Evidence", "LineageResult", "check_lineage"]
