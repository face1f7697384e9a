"""Payload decoding and output encoding (`wasmtx.payload`): the serde rules."""

import math
import unittest
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import fake_host  # noqa: F401 - puts the SDK and the doubles on the path

from wasmtx.payload import MAX_DEPTH, InvalidPayload, OutputError, decoder_for, encode


@dataclass
class Transfer:
    from_: str
    to: str
    amount: int


@dataclass
class Account:
    id: str
    balance: int


@dataclass
class Setup:
    accounts: List[Account]


@dataclass
class AccountId:
    id: str


@dataclass
class Settings:
    name: str
    note: Optional[str]
    limit: int = 10
    tags: List[str] = field(default_factory=list)
    branch_id: str = field(default="", metadata={"json": "branch-id"})


@dataclass
class Node:
    label: str
    children: List["Node"]


@dataclass
class Owner:
    name: str


@dataclass
class Pet:
    name: str


@dataclass
class Household:
    owners: List[Owner]
    pets: List[Pet]


@dataclass
class Positive:
    n: int

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise ValueError(f"n must be positive, got {self.n}")


def decode(annotation: Any, payload: "str | bytes") -> Any:
    data = payload.encode() if isinstance(payload, str) else payload
    return decoder_for(annotation).decode(data)


class RefusalCase(unittest.TestCase):
    def assertRefused(self, annotation: Any, payload: "str | bytes", message: str) -> None:
        with self.assertRaises(InvalidPayload) as caught:
            decode(annotation, payload)
        self.assertEqual(str(caught.exception), message)

    def assertRefusedStartingWith(self, annotation: Any, payload: "str | bytes", prefix: str) -> None:
        with self.assertRaises(InvalidPayload) as caught:
            decode(annotation, payload)
        self.assertTrue(str(caught.exception).startswith(prefix), str(caught.exception))


class DataclassPayloads(RefusalCase):
    def test_fields_are_read_by_name_and_a_keyword_field_drops_its_underscore(self) -> None:
        t = decode(Transfer, '{"from":"alice","to":"bob","amount":30}')
        self.assertEqual(t, Transfer(from_="alice", to="bob", amount=30))

    def test_unknown_fields_are_ignored_even_when_repeated(self) -> None:
        self.assertEqual(decode(AccountId, '{"id":"alice","note":1,"note":[2]}'), AccountId("alice"))

    def test_a_field_given_twice_is_refused(self) -> None:
        self.assertRefused(AccountId, '{"id":"alice","id":"bob"}', "duplicate field `id`")
        self.assertRefused(
            Setup, '{"accounts":[{"id":"carol","balance":5,"balance":6}]}', "duplicate field `accounts[0].balance`"
        )

    def test_a_missing_field_is_refused_in_declaration_order(self) -> None:
        self.assertRefused(Transfer, '{"from":"alice"}', "missing field `to`")
        self.assertRefused(Transfer, '{"to":"bob","from":"alice"}', "missing field `amount`")

    def test_optional_and_defaulted_fields_may_be_missing(self) -> None:
        s = decode(Settings, '{"name":"n"}')
        self.assertEqual(s, Settings(name="n", note=None, limit=10, tags=[], branch_id=""))
        s = decode(Settings, '{"name":"n","note":null,"limit":3,"tags":["a"],"branch-id":"02"}')
        self.assertEqual(s, Settings(name="n", note=None, limit=3, tags=["a"], branch_id="02"))
        self.assertEqual(decode(Settings, '{"name":"n","note":"x"}').note, "x")

    def test_metadata_renames_a_field(self) -> None:
        self.assertEqual(decode(Settings, '{"name":"n","branch_id":"ignored"}').branch_id, "")

    def test_wrong_types_are_refused_with_the_field_path(self) -> None:
        self.assertRefused(Transfer, '{"from":5,"to":"b","amount":1}', "field `from` must be a string, got an integer")
        self.assertRefused(Transfer, '{"from":"a","to":null,"amount":1}', "field `to` must be a string, got null")
        self.assertRefused(
            Transfer, '{"from":"a","to":"b","amount":"30"}', "field `amount` must be an integer, got a string"
        )
        self.assertRefused(Setup, '{"accounts":{"id":"x"}}', "field `accounts` must be an array, got an object")
        self.assertRefused(
            Setup, '{"accounts":[{"id":"a","balance":true}]}', "field `accounts[0].balance` must be an integer, got a boolean"
        )

    def test_an_integer_is_an_integer_literal(self) -> None:
        for literal in ["30.0", "1e2", "-0", "true"]:
            with self.subTest(literal=literal):
                self.assertRefusedStartingWith(
                    Transfer, f'{{"from":"a","to":"b","amount":{literal}}}', "field `amount` must be an integer, got "
                )

    def test_integers_are_limited_to_the_i64_range(self) -> None:
        for n in [2**63 - 1, -(2**63), 0, 30]:
            self.assertEqual(decode(Transfer, f'{{"from":"a","to":"b","amount":{n}}}').amount, n)
        for n in [2**63, -(2**63) - 1, 10**30]:
            with self.subTest(n=n):
                self.assertRefused(
                    Transfer, f'{{"from":"a","to":"b","amount":{n}}}', "field `amount` is out of the i64 range"
                )

    def test_only_an_object_is_a_dataclass_payload(self) -> None:
        for payload in ['["alice","bob",30]', "null", '"alice"', "30", "true", "", "  \n"]:
            with self.subTest(payload=payload):
                self.assertRefused(Transfer, payload, "payload must be a JSON object")

    def test_a_nested_non_object_is_named_after_its_class(self) -> None:
        self.assertRefused(Setup, '{"accounts":[["carol",5]]}', "account must be a JSON object")
        self.assertRefused(List[AccountId], '[{"id":"a"}, 5]', "account id must be a JSON object")

    def test_a_nested_non_object_is_reported_only_if_nothing_else_is_wrong(self) -> None:
        # As serde with the Rust example's `Object<T>`: decoding errors first.
        self.assertRefused(Setup, '{"accounts":[["carol",5],{"id":"x"}]}', "missing field `accounts[1].balance`")
        self.assertRefused(Setup, '{"accounts":[5,{"id":"x","balance":1},[]]}', "account must be a JSON object")

    def test_the_first_non_object_in_document_order_is_the_one_reported(self) -> None:
        self.assertRefused(Household, '{"owners":[{"name":"a"},5],"pets":[6]}', "owner must be a JSON object")
        self.assertRefused(Household, '{"pets":[6],"owners":[5]}', "pet must be a JSON object")

    def test_a_dataclass_may_contain_itself(self) -> None:
        tree = decode(Node, '{"label":"a","children":[{"label":"b","children":[]}]}')
        self.assertEqual(tree, Node("a", [Node("b", [])]))

    def test_a_post_init_refusal_is_an_invalid_payload(self) -> None:
        self.assertEqual(decode(Positive, '{"n":2}'), Positive(2))
        self.assertRefused(Positive, '{"n":0}', "n must be positive, got 0")
        self.assertRefused(List[Positive], '[{"n":1},{"n":-1}]', "field `[1]`: n must be positive, got -1")


class JsonRules(RefusalCase):
    def test_nesting_up_to_the_limit_is_accepted_and_deeper_refused(self) -> None:
        self.assertEqual(decode(Any, "[" * MAX_DEPTH + "]" * MAX_DEPTH), eval("[" * MAX_DEPTH + "]" * MAX_DEPTH))
        self.assertRefused(Any, "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nesting deeper than 128")

    def test_depth_is_checked_before_parsing(self) -> None:
        # Unterminated and far too deep: json.loads would recurse before finding
        # the error; the depth check refuses first.
        self.assertRefused(Any, '{"a":' * 100_000, "nesting deeper than 128")
        self.assertRefused(Any, "[" * 1_000_000, "nesting deeper than 128")

    def test_brackets_inside_strings_do_not_count(self) -> None:
        text = '{"id":"' + "[{" * 500 + '\\"]"}'
        self.assertEqual(decode(AccountId, text).id, "[{" * 500 + '"]')

    def test_nan_and_infinities_are_not_json(self) -> None:
        for literal in ["NaN", "Infinity", "-Infinity"]:
            with self.subTest(literal=literal):
                self.assertRefused(float, literal, f"invalid literal {literal}")

    def test_numbers_beyond_a_double_are_refused_where_they_are_read(self) -> None:
        self.assertRefused(float, "1e400", "payload is out of a double's range")
        self.assertRefused(Any, "[1, -1e400]", "field `[1]` is out of a double's range")
        self.assertRefused(float, "1" + "0" * 400, "payload is out of a double's range")
        # serde_json skips an ignored field without reading its number.
        self.assertEqual(decode(AccountId, '{"id":"a","x":1e400}'), AccountId("a"))

    def test_minus_zero_is_a_float(self) -> None:
        value = decode(float, "-0")
        self.assertEqual(value, 0.0)
        self.assertEqual(math.copysign(1.0, value), -1.0)
        self.assertIsInstance(decode(Any, "-0"), float)
        self.assertEqual(decode(int, "0"), 0)

    def test_a_float_accepts_integers(self) -> None:
        self.assertEqual(decode(float, "3"), 3.0)
        self.assertIsInstance(decode(float, "3"), float)
        self.assertRefused(float, "true", "payload must be a number, got a boolean")

    def test_lone_surrogates_are_refused_where_the_function_reads_them(self) -> None:
        self.assertRefused(AccountId, r'{"id":"\ud800"}', "field `id` has a lone surrogate")
        self.assertRefused(Any, r'{"a":["\udc00"]}', "field `a[0]` has a lone surrogate")
        self.assertRefused(Dict[str, int], r'{"\ud800":1}', "field `\ud800` has a lone surrogate")
        # A pair is a character, and an ignored field is not read.
        self.assertEqual(decode(AccountId, r'{"id":"\ud83d\ude00"}').id, "\U0001f600")
        self.assertEqual(decode(AccountId, r'{"id":"a","note":"\ud800"}').id, "a")

    def test_malformed_json_and_bytes_that_are_not_utf8_are_refused(self) -> None:
        self.assertRefusedStartingWith(Any, "not json", "Expecting value")
        self.assertRefusedStartingWith(Any, '{"a":1', "Expecting")
        self.assertRefusedStartingWith(Any, b'"\xff"', "not UTF-8")
        self.assertRefusedStartingWith(Any, "[1] [2]", "Extra data")

    def test_an_empty_payload_is_null(self) -> None:
        self.assertIsNone(decode(None, ""))
        self.assertIsNone(decode(None, " \t\r\n\x0c"))
        self.assertIsNone(decode(Optional[int], ""))
        self.assertEqual(decode(Optional[int], "5"), 5)
        self.assertRefused(None, "{}", "payload must be null, got an object")

    def test_dicts_and_any_keep_the_last_of_repeated_keys(self) -> None:
        self.assertEqual(decode(dict, '{"a":1,"a":2}'), {"a": 2})
        self.assertEqual(decode(Any, '{"a":{"b":1,"b":[3]}}'), {"a": {"b": [3]}})
        self.assertEqual(type(decode(Any, '{"a":{}}')["a"]), dict)

    def test_a_dict_payload_must_be_an_object(self) -> None:
        self.assertRefused(dict, "[1]", "payload must be a JSON object")
        self.assertRefused(Dict[str, int], '{"a":"x"}', "field `a` must be an integer, got a string")
        self.assertEqual(decode(Dict[str, List[int]], '{"a":[1,2]}'), {"a": [1, 2]})


class Annotations(unittest.TestCase):
    def test_types_that_json_cannot_give_are_refused_at_registration(self) -> None:
        for annotation in [set, tuple, complex, Dict[int, str], "int | str", List[bytes]]:
            with self.subTest(annotation=annotation):
                with self.assertRaises(TypeError):
                    decoder_for(eval(annotation) if isinstance(annotation, str) else annotation)

    def test_optional_spellings_are_equivalent(self) -> None:
        for annotation in [Optional[int], "int | None"]:
            decoder = decoder_for(eval(annotation) if isinstance(annotation, str) else annotation)
            self.assertIsNone(decoder.decode(b"null"))
            self.assertEqual(decoder.decode(b"7"), 7)


class Outputs(unittest.TestCase):
    def test_none_is_null_and_bytes_are_raw(self) -> None:
        self.assertEqual(encode(None), b"null")
        self.assertEqual(encode(b"\xff\x00"), b"\xff\x00")
        self.assertEqual(encode(bytearray(b"ab")), b"ab")

    def test_values_are_compact_json_in_order(self) -> None:
        self.assertEqual(encode({"id": "alice", "balance": 70}), b'{"id":"alice","balance":70}')
        self.assertEqual(encode([1, 2.5, True, None, "é"]), '[1,2.5,true,null,"é"]'.encode())
        self.assertEqual(encode((1, 2)), b"[1,2]")
        self.assertEqual(encode({1: "a"}), b'{"1":"a"}')

    def test_dataclasses_are_objects_keyed_like_their_payloads(self) -> None:
        self.assertEqual(encode(Transfer("a", "b", 3)), b'{"from":"a","to":"b","amount":3}')
        self.assertEqual(
            encode(Settings("n", None, branch_id="01")), b'{"name":"n","note":null,"limit":10,"tags":[],"branch-id":"01"}'
        )

    def test_non_finite_floats_are_null_as_serde_json_writes_them(self) -> None:
        self.assertEqual(encode([math.nan, math.inf, -math.inf]), b"[null,null,null]")

    def test_bytes_inside_json_are_an_array_of_numbers(self) -> None:
        self.assertEqual(encode({"b": b"\x01\x02"}), b'{"b":[1,2]}')

    def test_what_json_cannot_hold_is_refused(self) -> None:
        cycle: List[Any] = []
        cycle.append(cycle)
        cases = [
            (2**64, "integer 18446744073709551616 is outside the range from i64 min to u64 max"),
            ({1, 2}, "a set is not a JSON value"),
            ({(1,): "a"}, "a tuple cannot be a JSON object key"),
            ("\ud800", "a string has a lone surrogate"),
            (cycle, "nesting deeper than 128"),
        ]
        for value, message in cases:
            with self.subTest(message=message):
                with self.assertRaises(OutputError) as caught:
                    encode(value)
                self.assertEqual(str(caught.exception), message)
        self.assertEqual(encode(2**64 - 1), b"18446744073709551615")
        self.assertEqual(encode(-(2**63)), b"-9223372036854775808")


if __name__ == "__main__":
    unittest.main()
