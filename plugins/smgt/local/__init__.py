"""Local Ground Truth emulator: SageMaker labeling jobs and work teams on top of moto, one endpoint.

See `emulator.LocalGroundTruth` and `python -m smgt.local serve`.
"""

from .emulator import LocalGroundTruth
from .faults import Faults

__all__ = ["Faults", "LocalGroundTruth"]
