"""The built-in stages, registered here in run order.

lineage -> reference (an input, not evidence) -> static -> signature -> canary.
A new line of evidence is one module with a `Stage` subclass plus one `register(...)`
line (here, or from anywhere before the scan runs, e.g. a plugin).
"""

from distill_audit.scan.stage import register
from distill_audit.scan.stages.canary import CanaryStage
from distill_audit.scan.stages.lineage import LineageStage
from distill_audit.scan.stages.reference import ReferenceStage
from distill_audit.scan.stages.signature import SignatureStage
from distill_audit.scan.stages.static import StaticStage

for _stage in (LineageStage(), ReferenceStage(), StaticStage(), SignatureStage(), CanaryStage()):
    register(_stage)
