"""Double of `wit_world.exports`: the `handler` export as a protocol."""

from abc import abstractmethod
from typing import List, Protocol

from ..imports import types


class Handler(Protocol):
    @abstractmethod
    def functions(self) -> List[str]:
        raise NotImplementedError

    @abstractmethod
    def invoke(self, function: str, ctx: types.BranchContext, payload: bytes) -> bytes:
        raise NotImplementedError
