"""The Temporal Schedule (`sched-{id}`) that carries one of our spinner schedules."""

from __future__ import annotations

from temporalio.client import Schedule, ScheduleActionStartWorkflow, ScheduleSpec, ScheduleState

from infra.settings import Settings
from models.schedule import SpinnerSchedule
from workflows.contracts import SCHEDULED_RUN_WORKFLOW, ScheduledRunInput, schedule_id, task_queues


def temporal_schedule(settings: Settings, sched: SpinnerSchedule) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_RUN_WORKFLOW,
            ScheduledRunInput(
                str(sched.id),
                task_queues(settings.task_queue),
                settings.job_window,
                settings.job_batch,
                settings.job_children_per_run,
            ),
            id=f"{schedule_id(str(sched.id))}-run",
            task_queue=settings.task_queue("main"),
        ),
        spec=ScheduleSpec(cron_expressions=[sched.cron], time_zone_name=sched.timezone),
        state=ScheduleState(paused=sched.paused, note="CXGear spinner schedule"),
    )
