"""The configuration's former home: `pipeline.settings` loads and checks the settings now.

TRANSITIONAL: removed when pipeline/night reads `pipeline.settings` (issue 30); `load` returns the
typed `Settings`, not a dict (one loader).
"""

from pipeline.settings import GUARDABLE, OPEN, RETIRED, Settings, defaults, load

__all__ = ["GUARDABLE", "OPEN", "RETIRED", "Settings", "defaults", "load"]
