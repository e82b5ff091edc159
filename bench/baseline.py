"""The physical limit for the engine benchmark: bare parent/child workflows, same batching,
four no-op (regular) activities per child. Run as a worker: `python -m bench.baseline ADDRESS QUEUE`.

With `activities=0` the children do nothing but report: the server's floor for one child per
record on this machine, which bounds any engine built on child workflows."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.workflow import ParentClosePolicy


@dataclass
class ChildInput:
    n: int
    parent_id: str
    activities: int = 4


@dataclass
class ParentInput:
    total: int
    window: int
    batch: int
    task_queue: str
    # Like the JobWorkflow, the parent continues as new so its history stays under the limit.
    per_run: int = 2000
    started: int = 0
    finished: int = 0
    active: int = 0
    activities: int = 4


@activity.defn
async def noop(n: int) -> int:
    return n


@workflow.defn
class BaselineChild:
    @workflow.run
    async def run(self, inp: ChildInput) -> int:
        for _ in range(inp.activities):
            await workflow.execute_activity(
                noop, inp.n, start_to_close_timeout=timedelta(seconds=30)
            )
        await workflow.get_external_workflow_handle(inp.parent_id).signal("done", inp.n)
        return inp.n


@workflow.defn
class BaselineParent:
    @workflow.init
    def __init__(self, inp: ParentInput) -> None:
        self.active = inp.active
        self.finished = inp.finished

    @workflow.signal
    def done(self, n: int) -> None:
        self.active -= 1
        self.finished += 1

    @workflow.run
    async def run(self, inp: ParentInput) -> int:
        me = workflow.info().workflow_id
        started, this_run = inp.started, 0
        while started < inp.total:
            if this_run >= inp.per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    ParentInput(
                        inp.total,
                        inp.window,
                        inp.batch,
                        inp.task_queue,
                        inp.per_run,
                        started,
                        self.finished,
                        self.active,
                        inp.activities,
                    )
                )
            await workflow.wait_condition(lambda: self.active < inp.window)
            count = min(inp.window - self.active, inp.total - started, inp.per_run - this_run)
            ids = list(range(started, started + count))
            self.active += count
            started += count
            this_run += count
            for i in range(0, len(ids), inp.batch):
                await asyncio.gather(
                    *(
                        workflow.start_child_workflow(
                            BaselineChild.run,
                            ChildInput(n, me, inp.activities),
                            id=f"{me}-c{n}",
                            task_queue=inp.task_queue,
                            parent_close_policy=ParentClosePolicy.ABANDON,
                        )
                        for n in ids[i : i + inp.batch]
                    )
                )
        await workflow.wait_condition(lambda: self.finished >= inp.total)
        return self.finished


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[BaselineParent, BaselineChild],
        activities=[noop],
        max_concurrent_activities=200,
        max_concurrent_workflow_tasks=100,
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
