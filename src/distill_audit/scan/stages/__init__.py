"""The built-in stages, registered in run order on import.

lineage -> reference (an input, not evidence) -> static -> signature -> canary.
A new line of evidence is one more module here with its `register(...)` call (or a
`register` from anywhere before the scan runs).
"""

from distill_audit.scan.stages import lineage, reference, static, signature, canary  # noqa: F401  (order matters)
