"""Unit tests of app.py, run natively with `python3 -m unittest`.

The wasmtx Python SDK's test doubles play the host: `fake_host` (in the SDK's
tests/) answers each `db` call with what a test queues and records the SQL.
The SDK is the wasmtx checkout in $WASMTX_SDK, else the one `wasmtx guest new`
used.
"""

import os
import sys
import unittest

SDK = os.environ.get("WASMTX_SDK") or "{{sdk}}"
sys.path.insert(0, os.path.join(SDK, "guest-sdk", "python", "tests"))

# fake_host installs the doubles; it must come before anything imports wasmtx.
from fake_host import HostTestCase, wit_db, wit_rows  # noqa: E402

import app  # noqa: E402
from wasmtx import Context, Failure, Op, branch  # noqa: E402


class Hello(HostTestCase):
    def test_a_name_is_greeted_by_way_of_the_database(self) -> None:
        self.host.answer(wit_rows(["greeting"], [wit_db.Value_Text("Hello, Ada!")]))
        output = branch.dispatch("hello", Context(Op.ACTION), b'{"name":"Ada"}')
        self.assertEqual(output, b'{"greeting":"Hello, Ada!"}')
        self.assertEqual(
            self.host.statements,
            [("query", "SELECT CAST($1 AS TEXT) AS greeting", [wit_db.Value_Text("Hello, Ada!")])],
        )

    def test_an_empty_name_is_refused_before_the_database(self) -> None:
        with self.assertRaises(Failure) as caught:
            branch.dispatch("hello", Context(Op.ACTION), b'{"name":""}')
        self.assertEqual(str(caught.exception), "name must not be empty")
        self.assertEqual(self.host.statements, [])

    def test_the_module_exports_hello(self) -> None:
        self.assertIn("hello", branch.functions())
        self.assertEqual(app.greeting_for("Ada"), "Hello, Ada!")


if __name__ == "__main__":
    unittest.main()
