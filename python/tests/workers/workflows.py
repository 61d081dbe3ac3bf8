"""Workflow classes for the workflow tests (the Python twins of the seed's examples)."""

import asyncio
import os
import time

from titan_pm import compensate, stage, workflow

LOG = []  # in-process runs: what ran, in order


def _log(entry):
    LOG.append(entry)
    path = os.environ.get("TITAN_WORKFLOW_LOG")
    if path:  # a child worker: the test reads the file
        with open(path, "a") as f:
            f.write(repr(entry) + "\n")


@workflow
class ComplexWorkflow:
    """A, B -> C, D -> E: C and D overlap in time, E sees both."""

    async def _step(self, name, input, seconds):
        start = time.monotonic()
        await asyncio.sleep(seconds)
        _log((name, start, time.monotonic()))
        return {"stage": name, "saw": input}

    @stage(name="A")
    async def a(self, input):
        return await self._step("A", input, 0.05)

    @stage(name="B")
    async def b(self, input):
        return await self._step("B", input, 0.05)

    @stage(name="C", depends_on=["A", "B"])
    async def c(self, input):
        return await self._step("C", input, 0.3)

    @stage(name="D", depends_on=["A", "B"])
    async def d(self, input):
        return await self._step("D", input, 0.3)

    @stage(name="E", depends_on=["C", "D"])
    async def e(self, input):
        return await self._step("E", input, 0.01)


class PaymentDeclined(Exception):
    pass


@workflow
class OrderSaga:
    """charge-payment fails -> refundPayment -> releaseInventory -> cancelOrder."""

    @stage(name="create-order")
    async def create_order(self, order):
        return {"order_id": order["id"]}

    @stage(name="reserve-inventory", depends_on="create-order")
    async def reserve_inventory(self, input):
        return {"reservation": "r-1"}

    @stage(name="charge-payment", depends_on="reserve-inventory", retries=1)
    async def charge_payment(self, input):
        raise PaymentDeclined("card declined")

    @compensate("charge-payment")
    async def refundPayment(self, result, error):
        _log(("refundPayment", result, error["kind"]))

    @compensate("reserve-inventory")
    async def releaseInventory(self, result):
        _log(("releaseInventory", result))

    @compensate("create-order")
    def cancelOrder(self, result):
        _log(("cancelOrder", result))


@workflow
class Flaky:
    """Fails twice, then succeeds (retries=3)."""

    attempts = []

    @stage(name="flaky", retries=3)
    def flaky(self, input, ctx):
        Flaky.attempts.append(time.monotonic())
        if len(Flaky.attempts) <= 2:
            raise RuntimeError(f"attempt {len(Flaky.attempts)} fails")
        return {"attempt": ctx["attempt"], "key": ctx["idempotency_key"]}


@workflow
class Slow:
    """Every attempt exceeds its timeout."""

    @stage(name="slow", timeout=0.1, retries=1)
    async def slow(self, input):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            _log(("cancelled",))
            raise
