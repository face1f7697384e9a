"""Double of `wit_world.imports.types` (the WIT `types` interface)."""

from dataclasses import dataclass
from enum import Enum
from typing import List, Tuple, Union


class Op(Enum):
    ACTION = 0
    COMPENSATE = 1
    TRY = 2
    CONFIRM = 3
    CANCEL = 4
    COMMIT = 5
    ROLLBACK = 6
    CALL = 7


@dataclass
class BranchContext:
    gid: str
    branch_id: str
    op: Op
    attempt: int
    headers: List[Tuple[str, str]]


@dataclass
class BranchError_Failure:
    value: str


@dataclass
class BranchError_Retry:
    value: str


BranchError = Union[BranchError_Failure, BranchError_Retry]
