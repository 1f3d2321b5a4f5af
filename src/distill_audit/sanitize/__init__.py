"""`sanitize`: drop the rows that carry the data signature and check the removal worked.

scores (the scan's signature stage, from its cache) -> rank (rows by the statistic the
scan ranked by) -> audit (re-analyse kept rows without new forward passes, beside random
removals and a selection-aware null) -> write (kept rows in the input's own format, a
manifest) -> report (JSON, Markdown, HTML with a plot). See docs/sanitize.md.
"""
