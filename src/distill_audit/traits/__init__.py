"""Trait evidence: probe suites, exact scoring, the data signature and statistics.

Probe suites are data (YAML under `suites/`); `probes` loads and scores them,
`scoring` holds the one forward-pass helper every trait measurement uses, `stats`
the paired statistics, and `signature` the white-box data signature.
"""
