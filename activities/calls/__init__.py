"""Call analysis activities: recordings from storage, speech to text, tags, scores, summaries."""

from activities.calls.analysis import AnalysisActivities
from activities.calls.steps import CallActivities

__all__ = ["AnalysisActivities", "CallActivities"]
