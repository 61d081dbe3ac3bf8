"""A worker whose methods declare policies (titan_pm.policies); `runs` counts executions."""

from titan_pm import cache, circuit_breaker, metric, process, public, rate_limit, validate


@process(name="policies", version="1.0.0")
class Policies:
    def init(self):
        self.count = 0
        self.down = False

    @public
    def runs(self):
        return self.count

    @rate_limit(rps=10, burst=10)
    @public
    def limited(self):
        self.count += 1
        return self.count

    @public
    @cache(ttl=0.4)
    def cached(self, x):
        self.count += 1
        return x * 1000 + self.count

    @public
    @validate({"type": "object", "required": ["email"], "properties": {"email": {"type": "string", "pattern": "@"}}})
    def create(self, user):
        self.count += 1
        return user["email"]

    @metric
    @public
    def add(self, a, b):
        return a + b

    @public
    def set_down(self, down):
        self.down = down

    @public
    @circuit_breaker(threshold=2, timeout=0.3, fallback="_cached_quote")
    def quote(self, symbol):
        self.count += 1
        if self.down:
            raise ConnectionError("the quote service is down")
        return f"live {symbol}"

    def _cached_quote(self, symbol):  # a fallback need not be public
        return f"cached {symbol}"
