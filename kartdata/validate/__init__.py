"""``kartdata validate``: session checks and the bad-frame filter.

- :func:`analyse` validates recordings together and returns per-session results;
- :func:`frame_verdicts` is what the sharder calls: frame index → reason to exclude.
"""

from kartdata.validate.analyse import SessionResult, analyse
from kartdata.validate.config import ValidateConfig
from kartdata.validate.verdicts import frame_verdicts

__all__ = ["SessionResult", "ValidateConfig", "analyse", "frame_verdicts"]
