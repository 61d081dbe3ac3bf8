"""The benchmark's worker: echoes its argument."""

from titan_pm import process, public


@process(name="echo", version="1.0.0")
class Echo:
    @public
    def echo(self, x):
        return x
