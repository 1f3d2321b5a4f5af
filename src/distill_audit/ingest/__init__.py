"""Stage 1 - ingest: read any teacher-generated dataset into `Sample`s.

Every command reads data through `load_dataset()` (or `iter_samples()` to stream);
nothing else parses files.
"""

from distill_audit.ingest.loader import DatasetStream, dataset_summary, iter_samples, load_dataset
from distill_audit.ingest.records import AuditDataset, Sample, SkippedRow
from distill_audit.ingest.schemas import SCHEMAS

__all__ = [
    "SCHEMAS",
    "AuditDataset",
    "DatasetStream",
    "Sample",
    "SkippedRow",
    "dataset_summary",
    "iter_samples",
    "load_dataset",
]
