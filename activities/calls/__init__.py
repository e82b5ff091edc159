"""Call analysis activities: recordings from storage, speech to text, summaries."""

from activities.calls.steps import CallActivities

__all__ = ["CallActivities"]
