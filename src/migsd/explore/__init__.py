"""``migsd explore``: a local web page to move levers and uncertain parameters and watch the decades change."""

from .controls import Control, ExploreError, explored_scenario, lever_controls, uncertain_controls

__all__ = ["Control", "ExploreError", "explored_scenario", "lever_controls", "uncertain_controls"]
