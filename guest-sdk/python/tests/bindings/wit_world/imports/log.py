"""Double of `wit_world.imports.log`: lines go to the fake host."""

from enum import Enum
from typing import Any


class Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


# Set by fake_host.FakeHost; None means no test installed one.
host: Any = None


def log(level: Level, message: str) -> None:
    if host is None:
        raise AssertionError("log.log called with no fake host installed")
    host.log(level, message)
