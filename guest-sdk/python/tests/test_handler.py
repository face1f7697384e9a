"""The WIT glue (`wasmtx.Handler`, `Context` from the WIT context) and `log`."""

import unittest
from typing import Any

from fake_host import Err, HostTestCase, wit_db, wit_types

from wasmtx import Context, Failure, Handler, Op, Retry, branch, log


def wit_context(op: Any = wit_types.Op.ACTION, **fields: Any) -> Any:
    values = {"gid": "g-1", "branch_id": "01", "op": op, "attempt": 1, "headers": []}
    values.update(fields)
    return wit_types.BranchContext(**values)


class HandlerExport(HostTestCase):
    def test_the_handler_implements_the_generated_protocol(self) -> None:
        from wit_world import exports

        self.assertIn(exports.Handler, Handler.__mro__)

    def test_functions_lists_the_registered_names(self) -> None:
        branch.function("alpha")(lambda ctx, payload: None)
        branch.function("beta")(lambda ctx, payload: None)
        self.assertEqual(Handler().functions()[-2:], ["alpha", "beta"])
        self.assertEqual(Handler().functions(), branch.functions())

    def test_the_wit_context_arrives_field_by_field(self) -> None:
        seen = []
        branch.function("peek")(lambda ctx, payload: seen.append(ctx))
        ctx = wit_context(wit_types.Op.COMPENSATE, attempt=3, headers=[("X-Trace", "abc")])
        self.assertEqual(Handler().invoke("peek", ctx, b""), b"null")
        self.assertEqual(
            seen, [Context(Op.COMPENSATE, gid="g-1", branch_id="01", attempt=3, headers=(("X-Trace", "abc"),))]
        )

    def test_every_wit_op_maps_to_the_op_of_the_same_name(self) -> None:
        seen = []
        branch.function("op")(lambda ctx, payload: seen.append(ctx.op))
        for wit_op in wit_types.Op:
            Handler().invoke("op", wit_context(wit_op), b"")
        self.assertEqual([str(op) for op in seen], ["action", "compensate", "try", "confirm", "cancel", "commit", "rollback", "call"])

    def test_errors_leave_as_the_wit_error_variants(self) -> None:
        branch.function("no")(lambda ctx, payload: (_ for _ in ()).throw(Failure("insufficient funds in alice")))
        branch.function("later")(lambda ctx, payload: (_ for _ in ()).throw(Retry("locked")))
        branch.function("bug")(lambda ctx, payload: 1 // 0)
        cases = [
            ("no", wit_types.BranchError_Failure("insufficient funds in alice")),
            ("later", wit_types.BranchError_Retry("locked")),
            ("bug", wit_types.BranchError_Retry("bug failed: ZeroDivisionError: integer division or modulo by zero")),
            ("missing", wit_types.BranchError_Failure(
                'unknown function "missing" (this module has: ' + ", ".join(branch.functions()) + ")"
            )),
        ]
        for name, expected in cases:
            with self.subTest(name=name):
                with self.assertRaises(Err) as caught:
                    Handler().invoke(name, wit_context(), b"")
                self.assertEqual(caught.exception.value, expected)

    def test_an_uncaught_database_error_leaves_as_retry(self) -> None:
        from wasmtx import db

        branch.function("write")(lambda ctx, payload: db.execute("UPDATE accounts SET balance = 0"))
        self.host.answer(wit_db.DbError(code="40001", message="could not serialize access"))
        with self.assertRaises(Err) as caught:
            Handler().invoke("write", wit_context(), b"")
        self.assertEqual(caught.exception.value, wit_types.BranchError_Retry("database error 40001: could not serialize access"))

    def test_a_message_the_component_model_cannot_carry_is_escaped(self) -> None:
        branch.function("odd")(lambda ctx, payload: (_ for _ in ()).throw(Failure("bad \ud800 name")))
        with self.assertRaises(Err) as caught:
            Handler().invoke("odd", wit_context(), b"")
        self.assertEqual(caught.exception.value, wit_types.BranchError_Failure("bad \\ud800 name"))

    def test_an_invalid_payload_leaves_as_failure(self) -> None:
        branch.function("strict")(lambda ctx, payload: None)
        with self.assertRaises(Err) as caught:
            Handler().invoke("strict", wit_context(), b"{")
        self.assertIsInstance(caught.exception.value, wit_types.BranchError_Failure)
        self.assertTrue(caught.exception.value.value.startswith("invalid payload for strict: "))


class Logging(HostTestCase):
    def test_each_level_goes_to_the_host_log(self) -> None:
        log.trace("t")
        log.debug("d")
        log.info("i")
        log.warn("w")
        log.error("e")
        log.info(42)  # type: ignore[arg-type]
        log.info("lone \udc00")
        self.assertEqual(
            self.host.lines,
            [("TRACE", "t"), ("DEBUG", "d"), ("INFO", "i"), ("WARN", "w"), ("ERROR", "e"), ("INFO", "42"), ("INFO", "lone \\udc00")],
        )


class Contexts(unittest.TestCase):
    def test_headers_are_found_ignoring_ascii_case(self) -> None:
        ctx = Context(Op.ACTION, headers=[("X-Trace", "abc"), ("x-trace", "second")])
        self.assertEqual(ctx.header("x-TRACE"), "abc")
        self.assertIsNone(ctx.header("missing"))
        self.assertEqual(ctx.headers, (("X-Trace", "abc"), ("x-trace", "second")))

    def test_defaults_are_a_first_direct_call(self) -> None:
        ctx = Context()
        self.assertEqual((ctx.op, ctx.gid, ctx.branch_id, ctx.attempt, ctx.headers), (Op.CALL, "", "", 1, ()))

    def test_the_op_must_be_an_op(self) -> None:
        with self.assertRaises(TypeError):
            Context("action")  # type: ignore[arg-type]

    def test_undo_ops_are_the_three_that_undo(self) -> None:
        self.assertEqual({op for op in Op if op.is_undo}, {Op.COMPENSATE, Op.CANCEL, Op.ROLLBACK})

    def test_errors_compare_by_kind_and_message(self) -> None:
        self.assertEqual(Failure("x"), Failure("x"))
        self.assertNotEqual(Failure("x"), Retry("x"))
        self.assertEqual(str(Retry("later")), "later")
        self.assertEqual(repr(Failure("no")), "Failure('no')")
        self.assertTrue(Retry("x").is_retry)
        self.assertFalse(Failure("x").is_retry)


if __name__ == "__main__":
    unittest.main()
