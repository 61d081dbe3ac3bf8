"""The value rule (titan_pm._values): dataclasses, pydantic models, enum
members, datetime/date/time, Decimal and UUID travel by one documented rule and
are decoded back where an annotation names the type; sets are refused with a
SerializationError that says how to convert them."""

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Dict, List, Optional

import pytest

from conftest import run, write_worker
from titan_pm import ProcessManager, RemoteError, SerializationError, process, public
from titan_pm.sync import ProcessManager as SyncProcessManager

pydantic = pytest.importorskip("pydantic")  # scripts/test-python.sh installs it


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Point:
    x: int
    y: int
    color: Color = Color.RED
    seen: Optional[datetime.datetime] = None


class User(pydantic.BaseModel):
    name: str
    id: uuid.UUID
    born: datetime.date


WHEN = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@process(name="values")
class Values:
    @public
    def describe(self, p: Point, when: datetime.datetime, amount: decimal.Decimal, ids: List[uuid.UUID], color: Color) -> str:
        assert isinstance(p, Point) and isinstance(p.color, Color) and isinstance(p.seen, datetime.datetime)
        assert when == WHEN and amount == decimal.Decimal("10.25") and ids == [ID] and color is Color.BLUE
        return f"{p.x},{p.y},{p.color.name},{p.seen.isoformat()},{when.tzinfo},{amount},{color.value}"

    @public
    def move(self, p: Point, dx: int) -> Point:
        return dataclasses.replace(p, x=p.x + dx)

    @public
    def points(self, n: int) -> Dict[str, List[Point]]:
        return {"all": [Point(i, i) for i in range(n)]}

    @public
    def user(self, u: User) -> User:
        assert isinstance(u, User) and isinstance(u.id, uuid.UUID)
        return u.model_copy(update={"name": u.name.upper()})

    @public
    def untyped(self, x):
        return x

    @public
    def a_set(self):
        return {1, 2}

    @public
    def at(self, t: Optional[datetime.time] = None) -> Optional[datetime.time]:
        return t


def test_values_travel_by_the_rule_and_come_back_typed():
    with SyncProcessManager() as pm:
        v = pm.spawn(Values, isolation="worker")
        p = Point(1, 2, Color.BLUE, WHEN)
        assert v.describe(p, WHEN, decimal.Decimal("10.25"), [ID], Color.BLUE) == (
            "1,2,BLUE,2024-05-01T12:30:00+00:00,UTC,10.25,blue"
        )
        # An untyped call gets what travelled; a typed one decodes by the return annotation.
        assert v.move(p, 10) == {"x": 11, "y": 2, "color": "blue", "seen": "2024-05-01T12:30:00+00:00"}
        assert v.call(Values.move, p, 10) == Point(11, 2, Color.BLUE, WHEN)
        assert v.call(Values.points, 2) == {"all": [Point(0, 0), Point(1, 1)]}
        assert v.call(Values.at, datetime.time(8, 15)) == datetime.time(8, 15)
        assert v.call(Values.at) is None
        u = User(name="ann", id=ID, born=datetime.date(1990, 1, 2))
        assert v.untyped(u) == {"name": "ann", "id": str(ID), "born": "1990-01-02"}
        assert v.call(Values.user, u) == User(name="ANN", id=ID, born=datetime.date(1990, 1, 2))
        # An enum member, a Decimal and a UUID inside plain containers.
        assert v.untyped({"c": [Color.RED], "d": decimal.Decimal("0.1"), "u": ID}) == {"c": ["red"], "d": "0.1", "u": str(ID)}


def test_sets_and_unknown_objects_are_refused_with_how_to_convert():
    with SyncProcessManager() as pm:
        v = pm.spawn(Values, isolation="worker")
        with pytest.raises(SerializationError, match=r'args\[0\]\["s"\]: set is not sent .*sorted\(x\) or list\(x\)') as e:
            v.untyped({"s": {1, 2}})
        assert e.value.path == 'args[0]["s"]'
        # What the rule does not know, the codec refuses, naming the path (also inside a converted value).
        with pytest.raises(SerializationError, match="object is not supported") as e:
            v.untyped(Point(1, object()))
        assert e.value.path == 'args[0]["y"]'

        # A result the rule refuses fails that call, as a SerializationError, and the worker keeps serving.
        with pytest.raises(SerializationError, match=r"result: set is not sent .*sorted\(x\)") as e:
            v.a_set()
        assert isinstance(e.value, RemoteError)
        assert v.untyped(1) == 1


def test_a_child_worker_decodes_by_its_own_annotations(tmp_path):
    worker = write_worker(tmp_path, "dates.py", '''
import datetime, decimal
from titan_pm import process, public

@process(name="dates")
class Dates:
    @public
    def next_day(self, d: datetime.date, step: decimal.Decimal) -> datetime.date:
        assert isinstance(d, datetime.date) and isinstance(step, decimal.Decimal)
        return d + datetime.timedelta(days=int(step))
''')

    async def main():
        async with ProcessManager() as pm:
            d = await pm.spawn(worker)
            assert await d.next_day(datetime.date(2024, 2, 28), decimal.Decimal("2")) == "2024-03-01"

    run(main())


@process(name="configured")
class Configured:
    def init(self, start: datetime.date, color: Color, origin: Point) -> None:
        self.config = (start, color, origin)

    @public
    def describe(self) -> str:
        start, color, origin = self.config
        assert isinstance(start, datetime.date) and color is Color.BLUE and isinstance(origin, Point)
        return f"{start.isoformat()} {color.name} {origin.x},{origin.y}"


def test_spawn_dependencies_travel_by_the_rule_and_init_gets_its_types():
    with SyncProcessManager() as pm:
        c = pm.spawn(Configured, isolation="worker",
                     dependencies={"start": datetime.date(2024, 1, 31), "color": Color.BLUE, "origin": Point(3, 4)})
        assert c.describe() == "2024-01-31 BLUE 3,4"
        with pytest.raises(SerializationError, match=r'dependencies\["tags"\]: set is not sent'):
            pm.spawn(Configured, isolation="worker", dependencies={"tags": {"a"}})
