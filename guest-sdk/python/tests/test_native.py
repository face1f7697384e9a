"""The SDK run natively, without any generated bindings (how an app's own unit
tests run it): importable, `db` refuses, `log` writes to stderr."""

import os
import subprocess
import sys
import textwrap
import unittest

SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = textwrap.dedent(
    """
    from dataclasses import dataclass
    from wasmtx import Context, Failure, Handler, Retry, _bindings, branch, db, log

    assert not _bindings.AVAILABLE
    assert Handler.__mro__[1] is object

    @dataclass
    class Item:
        n: int

    @branch.function("double")
    def double(ctx, item: Item):
        return {"n": item.n * 2}

    @branch.function("write")
    def write(ctx, item: Item):
        db.execute("UPDATE t SET n = $1", item.n)

    print(branch.dispatch("double", Context(), b'{"n": 21}').decode())
    try:
        branch.dispatch("write", Context(), b'{"n": 1}')
    except Retry as e:
        print(e)
    try:
        db.execute("UPDATE t SET n = $1", 2**63)
    except ValueError as e:
        print(e)
    log.warn("careful")
    """
)


class Native(unittest.TestCase):
    def test_the_sdk_works_without_the_generated_bindings(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = SDK
        result = subprocess.run(
            [sys.executable, "-B", "-c", PROGRAM], capture_output=True, text=True, env=env, cwd=SDK, timeout=60
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(
            result.stdout.splitlines(),
            [
                '{"n":42}',
                "database error: wasmtx.db works only inside the wasmtx host (a component built with componentize-py)",
                "parameter $1: the integer 9223372036854775808 is outside the i64 range",
            ],
        )
        self.assertEqual(result.stderr, "[WARN] careful\n")


if __name__ == "__main__":
    unittest.main()
