"""A host for the durability test: `workflow_host.py JOURNAL RUN_ID FILE [hang]`
runs a 4-stage chain (s1 -> s2 -> s3 -> s4) whose stages append
`name idempotency_key` lines to FILE; with `hang`, s3 appends and then hangs
(the test SIGKILLs this host there). Prints `RESULT <json>` and exits."""

import asyncio
import json
import sys

from titan_pm import ProcessManager, stage, workflow

JOURNAL, RUN_ID, FILE = sys.argv[1:4]
HANG = sys.argv[4:5] == ["hang"]


def _append(name, ctx):
    with open(FILE, "a") as f:
        f.write(f"{name} {ctx['idempotency_key']}\n")


@workflow
class Chain:
    @stage(name="s1")
    async def s1(self, input, ctx):
        _append("s1", ctx)
        return "s1 done"

    @stage(name="s2", depends_on=["s1"])
    async def s2(self, input, ctx):
        _append("s2", ctx)
        return "s2 done"

    @stage(name="s3", depends_on=["s2"])
    async def s3(self, input, ctx):
        _append("s3", ctx)
        if HANG:
            await asyncio.sleep(3600)
        return "s3 done"

    @stage(name="s4", depends_on=["s3"])
    async def s4(self, input, ctx):
        _append("s4", ctx)
        return "s4 done"


async def main():
    async with ProcessManager(workflows={"journal": JOURNAL, "lease": 1.0}) as pm:
        wf = await pm.workflow(Chain)
        result = await wf.run({"order": 7}, run_id=RUN_ID)
        print("RESULT " + json.dumps(result, sort_keys=True), flush=True)


asyncio.run(main())
