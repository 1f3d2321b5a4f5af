"""Stage 1 - ingest: read any teacher-generated dataset into `Sample`s.

Every command reads data through `load_dataset()`; nothing else parses files.
"""

from distill_audit.ingest.records import AuditDataset, Sample, SkippedRow

__all__ = ["AuditDataset", "Sample", "SkippedRow"]
