"""Log lines through the WIT `log` import; the host attributes them to the
module, transaction and branch.

```python
log.info(f"debited {amount} from {account}")
```

`print` goes nowhere inside the host: use these. Outside a component (a native
unit test) lines go to stderr as `[INFO] message`.
"""

import sys

from . import _bindings


def trace(message: str) -> None:
    """A log line at `trace` level."""
    _emit("TRACE", message)


def debug(message: str) -> None:
    """A log line at `debug` level."""
    _emit("DEBUG", message)


def info(message: str) -> None:
    """A log line at `info` level."""
    _emit("INFO", message)


def warn(message: str) -> None:
    """A log line at `warn` level."""
    _emit("WARN", message)


def error(message: str) -> None:
    """A log line at `error` level."""
    _emit("ERROR", message)


def _emit(level: str, message: object) -> None:
    text = _bindings.wit_string(str(message))
    if _bindings.AVAILABLE:
        _bindings.log.log(_bindings.log.Level[level], text)
    else:
        print(f"[{level}] {text}", file=sys.stderr)
