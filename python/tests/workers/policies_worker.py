"""A worker whose methods declare policies (titan_pm.policies); `runs` counts executions."""

from titan_pm import cache, metric, process, public, rate_limit, validate


@process(name="policies", version="1.0.0")
class Policies:
    def init(self):
        self.count = 0

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
