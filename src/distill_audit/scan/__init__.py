"""The scan pipeline: stages in order, the stage cache and the verdict.

Calling the package runs the Python API's `distill_audit.api.scan`.
"""

from distill_audit.api import callable_package

callable_package(__name__)
