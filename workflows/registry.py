"""The one list of workflows every worker registers."""

from workflows.job_workflow import JobWorkflow
from workflows.record_workflow import RecordWorkflow
from workflows.scheduled_run_workflow import ScheduledRunWorkflow

ALL_WORKFLOWS = [JobWorkflow, RecordWorkflow, ScheduledRunWorkflow]
