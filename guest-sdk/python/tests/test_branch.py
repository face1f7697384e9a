"""Registration and dispatch (`wasmtx.branch`): what leaves a call."""

import unittest
from dataclasses import dataclass
from typing import Any, Dict

from fake_host import HostTestCase, wit_db, wit_rows

from wasmtx import Context, DbError, Failure, Op, Retry, branch, db


@dataclass
class Transfer:
    from_: str
    amount: int


class Registration(HostTestCase):
    def test_the_decorator_returns_the_function_itself(self) -> None:
        def ping(ctx: Context, payload: None) -> str:
            return "pong"

        self.assertIs(branch.function("ping")(ping), ping)
        self.assertIn("ping", branch.functions())

    def test_names_keep_registration_order(self) -> None:
        for name in ["b-second", "a-first", "c-third"]:
            branch.function(name)(lambda ctx, payload: None)
        self.assertEqual(branch.functions()[-3:], ["b-second", "a-first", "c-third"])

    def test_a_name_registered_twice_is_refused(self) -> None:
        branch.function("twice")(lambda ctx, payload: None)
        with self.assertRaisesRegex(ValueError, "'twice' is registered twice"):
            branch.function("twice")(lambda ctx, payload: None)

    def test_an_empty_name_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            branch.function("")

    def test_a_function_must_take_the_context_and_the_payload(self) -> None:
        with self.assertRaisesRegex(TypeError, "must take two parameters"):
            branch.function("one")(lambda ctx: None)
        with self.assertRaisesRegex(TypeError, "must take two parameters"):
            branch.function("three")(lambda ctx, payload, extra: None)
        # A parameter with a default is not counted.
        branch.function("defaulted")(lambda ctx, payload, extra=1: None)

    def test_async_functions_are_refused(self) -> None:
        async def later(ctx: Context, payload: Any) -> None:
            return None

        with self.assertRaisesRegex(TypeError, "not async"):
            branch.function("later")(later)

    def test_an_undecodable_payload_type_is_refused_at_registration(self) -> None:
        def bad(ctx: Context, payload: set) -> None:
            return None

        with self.assertRaises(TypeError):
            branch.function("bad")(bad)
        self.assertNotIn("bad", branch.functions())


class Dispatch(HostTestCase):
    def setUp(self) -> None:
        super().setUp()

        @branch.function("trans-out")
        def trans_out(ctx: Context, t: Transfer) -> Dict[str, Any]:
            if t.amount <= 0:
                raise Failure(f"amount must be a positive integer, got {t.amount}")
            return {"from": t.from_, "amount": t.amount, "attempt": ctx.attempt}

        @branch.function("flaky")
        def flaky(ctx: Context, payload: None) -> None:
            raise Retry("locked")

        @branch.function("buggy")
        def buggy(ctx: Context, payload: Dict[str, Any]) -> None:
            payload["missing"]

        @branch.function("silent-bug")
        def silent_bug(ctx: Context, payload: Any) -> None:
            raise RuntimeError()

        @branch.function("exits")
        def exits(ctx: Context, payload: Any) -> None:
            raise SystemExit(3)

        @branch.function("debit")
        def debit(ctx: Context, payload: Any) -> int:
            return db.execute("UPDATE accounts SET balance = balance - 1")

        @branch.function("careful")
        def careful(ctx: Context, payload: Any) -> str:
            try:
                db.execute("INSERT INTO accounts (id) VALUES ('a')")
            except DbError as e:
                if e.is_unique_violation():
                    raise Failure("account a exists")
                raise
            return "created"

        @branch.function("set")
        def returns_a_set(ctx: Context, payload: Any) -> Any:
            return {1}

        @branch.function("raw")
        def raw(ctx: Context, payload: bytes) -> bytes:
            return payload[::-1]

    def call(self, name: str, payload: bytes, ctx: Context = Context(Op.ACTION, attempt=2)) -> bytes:
        return branch.dispatch(name, ctx, payload)

    def test_the_payload_is_decoded_and_the_output_encoded(self) -> None:
        self.assertEqual(self.call("trans-out", b'{"from":"alice","amount":30}'), b'{"from":"alice","amount":30,"attempt":2}')

    def test_none_output_is_null(self) -> None:
        branch.function("nothing")(lambda ctx, payload: None)
        self.assertEqual(self.call("nothing", b""), b"null")

    def test_a_bytes_payload_is_passed_raw(self) -> None:
        self.assertEqual(self.call("raw", b"\xff\x00not json"), b"nosj ton\x00\xff")

    def test_an_invalid_payload_is_a_failure_naming_the_function(self) -> None:
        cases = {
            b'{"from":"alice"}': "invalid payload for trans-out: missing field `amount`",
            b'["alice",30]': "invalid payload for trans-out: payload must be a JSON object",
            b"": "invalid payload for trans-out: payload must be a JSON object",
            b'{"from":"a","amount":-0}': "invalid payload for trans-out: field `amount` must be an integer, got a number",
        }
        for payload, message in cases.items():
            with self.subTest(payload=payload):
                with self.assertRaises(Failure) as caught:
                    self.call("trans-out", payload)
                self.assertEqual(caught.exception, Failure(message))
        with self.assertRaises(Failure) as caught:
            self.call("trans-out", b"not json")
        self.assertTrue(caught.exception.message.startswith("invalid payload for trans-out: "))

    def test_failure_and_retry_pass_through_unchanged(self) -> None:
        with self.assertRaises(Failure) as caught:
            self.call("trans-out", b'{"from":"alice","amount":0}')
        self.assertEqual(caught.exception, Failure("amount must be a positive integer, got 0"))
        with self.assertRaises(Retry) as caught_retry:
            self.call("flaky", b"")
        self.assertEqual(caught_retry.exception, Retry("locked"))

    def test_an_uncaught_database_error_is_a_retry_with_its_code(self) -> None:
        self.host.answer(wit_db.DbError(code="40001", message="could not serialize access"))
        with self.assertRaises(Retry) as caught:
            self.call("debit", b"")
        self.assertEqual(caught.exception, Retry("database error 40001: could not serialize access"))
        self.host.answer(wit_db.DbError(code=None, message="connection lost"))
        with self.assertRaises(Retry) as caught:
            self.call("debit", b"")
        self.assertEqual(caught.exception, Retry("database error: connection lost"))

    def test_a_caught_database_error_can_be_a_failure(self) -> None:
        self.host.answer(wit_db.DbError(code="2067", message="UNIQUE constraint failed: accounts.id"))
        with self.assertRaises(Failure) as caught:
            self.call("careful", b"")
        self.assertEqual(caught.exception, Failure("account a exists"))
        self.host.answer(1)
        self.assertEqual(self.call("careful", b""), b'"created"')

    def test_any_other_exception_is_a_retry_naming_it(self) -> None:
        cases = {
            "buggy": "buggy failed: KeyError: 'missing'",
            "silent-bug": "silent-bug failed: RuntimeError",
            "exits": "exits failed: SystemExit: 3",
        }
        for name, message in cases.items():
            with self.subTest(name=name):
                with self.assertRaises(Retry) as caught:
                    self.call(name, b"{}")
                self.assertEqual(caught.exception, Retry(message))

    def test_an_output_json_cannot_hold_is_a_failure(self) -> None:
        with self.assertRaises(Failure) as caught:
            self.call("set", b"")
        self.assertEqual(caught.exception, Failure("cannot encode the output of set: a set is not a JSON value"))

    def test_an_unknown_function_is_a_failure_listing_the_known_ones(self) -> None:
        with self.assertRaises(Failure) as caught:
            self.call('trans-"in', b"{}")
        self.assertEqual(
            caught.exception.message,
            'unknown function "trans-\\"in" (this module has: '
            + ", ".join(branch.functions())
            + ")",
        )
        self.assertIn("trans-out, flaky, buggy", caught.exception.message)

    def test_a_payload_class_defined_after_the_function_is_resolved_on_first_call(self) -> None:
        namespace: Dict[str, Any] = {"branch": branch, "Context": Context}
        exec(
            "from __future__ import annotations\n"
            "from dataclasses import dataclass\n"
            "@branch.function('later-class')\n"
            "def f(ctx: Context, p: Later) -> int:\n"
            "    return p.n\n"
            "@dataclass\n"
            "class Later:\n"
            "    n: int\n",
            namespace,
        )
        self.assertEqual(self.call("later-class", b'{"n":4}'), b"4")

    def test_the_database_answers_reach_the_function(self) -> None:
        @branch.function("count")
        def count(ctx: Context, payload: Any) -> Any:
            rows = db.query("SELECT id, balance FROM accounts")
            return [{"id": r["id"], "balance": r.balance} for r in rows]

        self.host.answer(
            wit_rows(["id", "balance"], [wit_db.Value_Text("alice"), wit_db.Value_Int(70)])
        )
        self.assertEqual(self.call("count", b""), b'[{"id":"alice","balance":70}]')


if __name__ == "__main__":
    unittest.main()
