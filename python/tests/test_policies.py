"""Method policies declared with the Python decorators and applied by the core:
bad options fail when applied, naming the option; a real worker's rate limit,
cache, JSON Schema validation and per-method metrics."""

import time

import pytest

from conftest import WORKERS
from titan_pm import RateLimitError, ValidationError, cache, circuit_breaker, idempotent, rate_limit, self_heal, validate
from titan_pm.policies import policies_of
from titan_pm.sync import ProcessManager as SyncProcessManager

POLICIES = str(WORKERS / "policies_worker.py")


def test_bad_options_fail_when_the_decorator_is_applied_naming_the_option():
    with pytest.raises(ValueError, match=r"rate_limit\(rps=...\)"):
        rate_limit(rps=0)
    with pytest.raises(ValueError, match=r"rate_limit\(strategy=...\)"):
        rate_limit(rps=1, strategy="leaky")
    with pytest.raises(ValueError, match=r"cache\(ttl=...\)"):
        cache(ttl=-1)
    with pytest.raises(ValueError, match=r"circuit_breaker\(threshold=...\)"):
        circuit_breaker(threshold=0)
    with pytest.raises(ValueError, match=r"self_heal\(action=...\)"):
        self_heal(symptoms=["timeout"], action="pray")
    with pytest.raises(ValueError, match=r"validate\(schema\) takes a JSON Schema dict, a pydantic model or TypeAdapter, or a callable, not int"):
        validate(42)
    with pytest.raises(ValueError, match=r"cache\(condition=...\) must be a function"):
        cache(ttl=1, condition=True)
    with pytest.raises(ValueError, match=r"cache\(ttl=...\)"):
        cache(ttl="soon", key=lambda x: x)


def test_a_key_names_a_parameter_or_a_field_of_the_first_argument():
    class Svc:
        @rate_limit(rps=5, key="user")
        def get(self, user, page):
            pass

        @idempotent(key="transaction_id", ttl="1h")
        def pay(self, request):
            pass

    assert policies_of(Svc.get)["rate_limit"]["key"] == 0
    assert policies_of(Svc.pay)["idempotent"] == {"key": "transaction_id", "ttl": "1h"}


def test_a_python_worker_gets_rate_limit_cache_validation_and_metrics_from_the_core():
    with SyncProcessManager() as pm:
        w = pm.spawn(POLICIES)
        ok, refused = 0, []
        for _ in range(25):
            try:
                w.limited()
                ok += 1
            except RateLimitError as e:
                refused.append(e.retry_after)
        assert 10 <= ok <= 11, ok
        assert refused and all(0 < r <= 1.0 for r in refused), refused
        assert w.runs() == ok
        first = w.cached(7)
        assert w.cached(7) == first
        assert w.runs() == ok + 1, "the hit did not run the method"
        time.sleep(0.5)
        assert w.cached(7) != first
        with pytest.raises(ValidationError) as e:
            w.create({"email": "nope"})
        assert [p for p, _ in e.value.failures] == ["/email"]
        assert w.runs() == ok + 2
        for i in range(4):
            w.add(i, i)
        assert pm.get_metrics(w.process_id)["methods"]["add"]["requests"] == 4


def test_an_open_breaker_answers_with_its_private_fallback_then_half_opens_and_closes():
    from titan_pm import RemoteError

    with SyncProcessManager() as pm:
        w = pm.spawn(POLICIES)
        w.set_down(True)
        for _ in range(2):
            with pytest.raises(RemoteError):
                w.quote("ACME")
        runs = w.runs()
        assert w.quote("ACME") == "cached ACME", "open: the fallback answers"
        assert w.runs() == runs, "open: the method did not run"
        with pytest.raises(Exception):
            w._cached_quote("ACME")  # a host's handle refuses underscore names
        w.set_down(False)
        time.sleep(0.4)  # past the breaker's 0.3 s timeout: half-open, one trial call
        assert w.quote("ACME") == "live ACME"
        assert w.quote("ACME") == "live ACME", "closed again"
        assert w.runs() == runs + 2
