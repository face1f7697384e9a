"""`wasmtx.db`: Python values to WIT values and back, rows, errors."""

import copy
import unittest

from fake_host import HostTestCase, wit_db, wit_rows

from wasmtx import DbError, Failure, db
from wasmtx.db import ColumnError, MissingColumn, Row, Rows


class Parameters(HostTestCase):
    def test_python_values_become_the_matching_wit_values(self) -> None:
        self.host.answer(1)
        n = db.execute("INSERT", None, True, False, 7, -(2**63), 2**63 - 1, 1.5, "é", b"\x00", bytearray(b"b"), memoryview(b"m"))
        self.assertEqual(n, 1)
        (_, sql, params), = self.host.statements
        self.assertEqual(sql, "INSERT")
        self.assertEqual(
            params,
            [
                wit_db.Value_Null(),
                wit_db.Value_Boolean(True),
                wit_db.Value_Boolean(False),
                wit_db.Value_Int(7),
                wit_db.Value_Int(-(2**63)),
                wit_db.Value_Int(2**63 - 1),
                wit_db.Value_Float(1.5),
                wit_db.Value_Text("é"),
                wit_db.Value_Bytes(b"\x00"),
                wit_db.Value_Bytes(b"b"),
                wit_db.Value_Bytes(b"m"),
            ],
        )
        # Exact types, not subclasses: a bool is not an int here.
        self.assertIs(type(params[1].value), bool)
        self.assertIs(type(params[9].value), bytes)

    def test_integers_outside_i64_are_refused_before_the_call(self) -> None:
        for n in [2**63, -(2**63) - 1]:
            with self.subTest(n=n):
                with self.assertRaises(ValueError) as caught:
                    db.execute("UPDATE t SET a = $1 WHERE b = $2", "x", n)
                self.assertEqual(str(caught.exception), f"parameter $2: the integer {n} is outside the i64 range")
        self.assertEqual(self.host.statements, [])

    def test_values_without_a_wit_value_are_refused(self) -> None:
        with self.assertRaisesRegex(TypeError, r"parameter \$1: cannot bind a dict; use None, bool, int, float, str or bytes$"):
            db.query("SELECT $1", {})
        with self.assertRaisesRegex(TypeError, r"give parameters as separate arguments"):
            db.execute("SELECT $1, $2", ["a", 1])
        with self.assertRaisesRegex(ValueError, r"parameter \$1: the string has a lone surrogate"):
            db.execute("SELECT $1", "\ud800")
        with self.assertRaisesRegex(TypeError, "the SQL must be a str"):
            db.execute(b"SELECT 1")
        self.assertEqual(self.host.statements, [])

    def test_a_refusal_of_the_database_is_a_db_error(self) -> None:
        self.host.answer(wit_db.DbError(code="23505", message="duplicate key"))
        with self.assertRaises(DbError) as caught:
            db.execute("INSERT")
        e = caught.exception
        self.assertEqual((e.code, e.message), ("23505", "duplicate key"))
        self.assertEqual(str(e), "database error 23505: duplicate key")
        self.assertTrue(e.is_unique_violation())
        self.assertFalse(e.is_foreign_key_violation())
        self.host.answer(wit_db.DbError(code=None, message="gone"))
        with self.assertRaises(DbError) as caught:
            db.query("SELECT 1")
        self.assertEqual(str(caught.exception), "database error: gone")
        self.assertFalse(caught.exception.is_unique_violation())

    def test_error_codes_of_both_backends_are_recognized(self) -> None:
        for code in ["23505", "2067", "1555"]:
            self.assertTrue(DbError(code, "m").is_unique_violation(), code)
        for code in ["23503", "787"]:
            self.assertTrue(DbError(code, "m").is_foreign_key_violation(), code)
        self.assertFalse(DbError("40001", "m").is_unique_violation())


class Results(HostTestCase):
    def query_accounts(self) -> Rows:
        self.host.answer(
            wit_rows(
                ["id", "balance", "note", "ratio", "active", "blob"],
                [
                    wit_db.Value_Text("alice"),
                    wit_db.Value_Int(70),
                    wit_db.Value_Null(),
                    wit_db.Value_Float(0.5),
                    wit_db.Value_Boolean(True),
                    wit_db.Value_Bytes(b"\x01"),
                ],
                [
                    wit_db.Value_Text("bob"),
                    wit_db.Value_Int(1),
                    wit_db.Value_Text("vip"),
                    wit_db.Value_Int(2),
                    wit_db.Value_Int(0),
                    wit_db.Value_Null(),
                ],
            )
        )
        return db.query("SELECT * FROM accounts WHERE id > $1", "")

    def test_wit_values_become_python_values(self) -> None:
        rows = self.query_accounts()
        self.assertEqual(rows.columns, ["id", "balance", "note", "ratio", "active", "blob"])
        self.assertEqual(len(rows), 2)
        self.assertEqual(dict(rows[0]), {"id": "alice", "balance": 70, "note": None, "ratio": 0.5, "active": True, "blob": b"\x01"})
        self.assertIs(type(rows[0]["active"]), bool)
        self.assertIs(type(rows[0]["blob"]), bytes)
        self.assertEqual(self.host.statements, [("query", "SELECT * FROM accounts WHERE id > $1", [wit_db.Value_Text("")])])

    def test_columns_are_read_by_name_as_items_or_attributes(self) -> None:
        row = self.query_accounts().first()
        assert row is not None
        self.assertEqual(row["balance"], 70)
        self.assertEqual(row.balance, 70)
        self.assertEqual(row.get("missing", "default"), "default")
        self.assertIn("note", row)
        self.assertEqual(list(row), ["id", "balance", "note", "ratio", "active", "blob"])

    def test_names_fall_back_to_an_ascii_case_insensitive_match(self) -> None:
        row = Row(["Balance", "balance2"], [1, 2])
        self.assertEqual(row["balance"], 1)
        self.assertEqual(row.BALANCE, 1)
        exact = Row(["ID", "id"], ["upper", "lower"])
        self.assertEqual((exact["id"], exact["ID"], exact["Id"]), ("lower", "upper", "upper"))

    def test_a_missing_column_is_a_failure(self) -> None:
        row = self.query_accounts()[0]
        with self.assertRaises(MissingColumn) as caught:
            row["amount"]
        e = caught.exception
        self.assertIsInstance(e, Failure)
        self.assertIsInstance(e, KeyError)
        self.assertEqual(str(e), 'no column "amount" in the result (columns: id, balance, note, ratio, active, blob)')
        with self.assertRaises(Failure):
            row.amount
        self.assertFalse(hasattr(row, "amount"))
        self.assertFalse(hasattr(row, "_private"))

    def test_typed_readers_refuse_other_types_as_a_failure(self) -> None:
        alice, bob = self.query_accounts()
        self.assertEqual(alice.get_int("balance"), 70)
        self.assertEqual(alice.get_str("id"), "alice")
        self.assertEqual(bob.get_float("ratio"), 2.0)
        self.assertIs(type(bob.get_float("ratio")), float)
        self.assertEqual((alice.get_bool("active"), bob.get_bool("active"), bob.get_bool("balance")), (True, False, True))
        self.assertEqual(alice.get_bytes("blob"), b"\x01")
        cases = [
            (lambda: alice.get_int("id"), 'column "id" holds text, expected int'),
            (lambda: alice.get_int("note"), 'column "note" holds null, expected int'),
            (lambda: alice.get_int("active"), 'column "active" holds boolean, expected int'),
            (lambda: alice.get_str("balance"), 'column "balance" holds int, expected text'),
            (lambda: alice.get_float("id"), 'column "id" holds text, expected float or int'),
            (lambda: alice.get_bool("ratio"), 'column "ratio" holds float, expected boolean or int 0/1'),
            (lambda: bob.get_bytes("blob"), 'column "blob" holds null, expected bytes'),
        ]
        for read, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(ColumnError) as caught:
                    read()
                self.assertIsInstance(caught.exception, Failure)
                self.assertEqual(str(caught.exception), message)

    def test_an_empty_result_has_no_first_row_but_has_columns(self) -> None:
        self.host.answer(wit_rows(["balance"]))
        rows = db.query("SELECT balance FROM accounts WHERE id = $1", "nobody")
        self.assertEqual(rows, [])
        self.assertIsNone(rows.first())
        self.assertEqual(rows.columns, ["balance"])

    def test_execute_returns_the_count(self) -> None:
        self.host.answer(3)
        self.assertEqual(db.execute("DELETE FROM t"), 3)

    def test_a_row_can_be_copied(self) -> None:
        # Copying builds a row before its slots are set: the attribute lookup
        # of columns must not recurse then.
        row = Row(["id", "balance"], ["alice", 70])
        for copied in (copy.copy(row), copy.deepcopy(row)):
            self.assertEqual(copied, row)
            self.assertEqual(copied.balance, 70)

    def test_a_row_must_have_a_value_per_column(self) -> None:
        with self.assertRaises(ValueError):
            Row(["a", "b"], [1])


if __name__ == "__main__":
    unittest.main()
