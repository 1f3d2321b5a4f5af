"""Trait evidence: probe suites, exact scoring, the data signature and statistics.

Probe suites are data (YAML under `suites/`); `probes` loads and scores them,
`stats` holds the paired statistics, `signature` the white-box data signature and
`canary` the fine-tune test. The forward-pass, sampling and training primitives they
use live in `distill_audit.lm`.
"""
