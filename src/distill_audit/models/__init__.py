"""Models: resolve any student/teacher reference, load it, and encode chat turns.

`names` and `registry` say what a model name is (its registry key, vendor and
pretrained initialization); the lineage check builds on them.
"""
