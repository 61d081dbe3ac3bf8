"""The decorators validate when applied and leave a frozen definition."""

import dataclasses

import pytest

from titan_pm import health_check, on_shutdown, process, public
from titan_pm.decorators import definition


def test_a_definition_collects_the_marked_methods():
    @process(name="svc", version="2.1.0")
    class Svc:
        @public
        def a(self):
            pass

        @public(timeout=2.5)
        async def b(self):
            pass

        def hidden(self):
            pass

        @health_check
        def check(self):
            pass

        @on_shutdown
        def first(self):
            pass

        @on_shutdown
        async def second(self):
            pass

    d = definition(Svc)
    assert (d.name, d.version) == ("svc", "2.1.0")
    assert list(d.methods) == ["a", "b"]
    assert d.methods["b"].is_async and d.methods["b"].timeout == 2.5
    assert not d.methods["a"].is_async and d.methods["a"].timeout is None
    assert d.health_check == "check"
    assert d.on_shutdown == ("first", "second")
    assert not d.has_init
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "other"  # type: ignore[misc]


def test_a_subclass_inherits_public_methods():
    class Base:
        @public
        def base(self):
            pass

    @process(name="child")
    class Child(Base):
        def init(self, x=None):
            pass

        @public
        def own(self):
            pass

    d = definition(Child)
    assert list(d.methods) == ["base", "own"] and d.has_init
    assert definition(Base) is None


def test_the_decorators_refuse_misuse():
    with pytest.raises(TypeError, match="@process decorates a class"):
        process(name="x")(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be called"):

        @process  # type: ignore[arg-type]
        class Bare:
            pass

    with pytest.raises(ValueError, match="non-empty string"):
        process(name="")
    with pytest.raises(TypeError, match="@public decorates a method"):
        public(42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="positive number of seconds"):
        public(timeout=-1)
    with pytest.raises(ValueError, match="must not start with an underscore"):

        @public
        def _private(self):
            pass

    with pytest.raises(ValueError, match="several @health_check methods in Two: a, b"):

        @process(name="two")
        class Two:
            @health_check
            def a(self):
                pass

            @health_check
            def b(self):
                pass
