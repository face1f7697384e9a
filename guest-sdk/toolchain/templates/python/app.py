"""The {{name}} module: wasmtx branch functions in Python (see README.md)."""

from dataclasses import dataclass

from wasmtx import Context, Failure, Handler, branch, db

# componentize-py exports the class `Handler` of this module.
__all__ = ["Handler"]


@dataclass
class Hello:
    """The payload of `hello`: {"name": "Ada"}."""

    name: str


def greeting_for(name: str) -> str:
    """What `hello` decides before it touches the database: the greeting, or a
    refusal (a `Failure` is never retried)."""
    if name == "":
        raise Failure("name must not be empty")
    return f"Hello, {name}!"


@branch.function("hello")
def hello(ctx: Context, payload: Hello) -> dict:
    """Greets `name` by way of the module's database: {"greeting": "Hello, Ada!"}.

    The function runs inside a database transaction that commits only if it
    returns; the SQL runs unchanged on SQLite and Postgres."""
    greeting = greeting_for(payload.name)
    row = db.query("SELECT CAST($1 AS TEXT) AS greeting", greeting).first()
    return {"greeting": row.get_str("greeting")}
