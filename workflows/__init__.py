"""Workflows, one per file; ALL_WORKFLOWS is the registry the worker uses."""

from workflows.job_workflow import JobWorkflow
from workflows.record_workflow import RecordWorkflow
from workflows.scheduled_run_workflow import ScheduledRunWorkflow

ALL_WORKFLOWS = [JobWorkflow, RecordWorkflow, ScheduledRunWorkflow]

__all__ = ["ALL_WORKFLOWS", "JobWorkflow", "RecordWorkflow", "ScheduledRunWorkflow"]
