"""Write wasmtx branch functions in Python.

A branch module is a WebAssembly component that exports named functions for
the wasmtx coordinator to run as saga actions, compensations, TCC steps or
direct calls. With this package a function is plain Python over a dataclass:

```python
from dataclasses import dataclass

from wasmtx import Context, Failure, Handler, branch, db, log  # Handler: the component's export


@dataclass
class Transfer:
    from_: str  # the JSON key "from"
    to: str
    amount: int


@branch.function("trans-out")
def trans_out(ctx: Context, t: Transfer) -> None:
    n = db.execute(
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1",
        t.amount, t.from_,
    )
    if n == 0:
        raise Failure(f"insufficient funds in {t.from_}")
    log.info(f"{ctx.gid}: moved {t.amount} from {t.from_}")
```

Build it with componentize-py 0.25.1, with this package's directory on the
path: `componentize-py -d wit -w branch componentize -p . -p <this directory> app -o app.wasm`.

# What the host guarantees, what the function must do

- Every call runs inside one local database transaction that commits only if
  the function returns. On any error nothing it wrote stays.
- `Failure` is a business refusal and is never retried; `Retry` makes the host
  call again later. An uncaught `db.DbError` is a `Retry`, and so is any other
  uncaught exception (`<function> failed: <Type>: <message>`): nothing a
  function raises traps the instance.
- Compensations (`Op.COMPENSATE`, `Op.CANCEL`) must succeed eventually: write
  them so that they do not refuse.

# Layout

- `branch`: `@branch.function(name)` registers; `dispatch` runs one as the host does.
- `Context`, `Op`: what the host says about the invocation.
- `Failure`, `Retry` (and their base `BranchError`): how a function refuses.
- `db`: `execute` and `query`, `Rows` and `Row`, `DbError`.
- `log`: log lines through the host.
- `payload`: how payloads are read and outputs written.
- `Handler`: the WIT export; the generated bindings are used only by
  `_bindings`, `handler`, `db` and `log`, and never appear in this API.
"""

from . import branch, db, log
from .context import Context, Op
from .db import DbError
from .errors import BranchError, Failure, Retry
from .handler import Handler

__all__ = ["branch", "db", "log", "Context", "Op", "BranchError", "Failure", "Retry", "DbError", "Handler"]
