"""A worker for the seed-configuration tests: it can grow its memory, turn
unhealthy on demand and crash, and declares version 2.0.0."""

import os

from titan_pm import health_check, process, public

_held = []


@process(name="seed", version="2.0.0")
class Seed:
    def init(self):
        self.sick = False

    @public
    def pid(self):
        return os.getpid()

    @public
    def allocate(self, mb):
        _held.append(bytearray(b"\x01" * (mb << 20)))
        return mb

    @public
    def turn_unhealthy(self):
        self.sick = True

    @public
    def crash(self):
        os._exit(3)

    @public
    def add(self, a, b):
        return a + b

    @health_check(interval=0.05)
    def check(self):
        return {"checks": [{"name": "self", "status": "fail" if self.sick else "pass"}]}
