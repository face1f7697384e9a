"""The coordinator under test, seen through DTM's HTTP API.

`DTM_SERVER` names it, as DTM clients are configured:
`http://127.0.0.1:PORT/api/dtmsvr`. `WASMTX_SERVER` (`http://127.0.0.1:PORT`),
when set, is the same server's native API; only the cases about Wasm steps
need it. This module reads the coordinator's answers (`query`); it never
drives a transaction: the test cases do that with dtmcli, as users do.
"""

import os
import time

import requests


def dtm_server():
    """The DTM API base URL, from `DTM_SERVER`."""
    url = os.environ.get("DTM_SERVER", "")
    if not url:
        raise RuntimeError(
            "DTM_SERVER is not set: point it at the DTM API, e.g. "
            "DTM_SERVER=http://127.0.0.1:36789/api/dtmsvr"
        )
    return url.rstrip("/")


def wasmtx_server():
    """The native API base URL, from `WASMTX_SERVER`, or None."""
    url = os.environ.get("WASMTX_SERVER", "")
    return url.rstrip("/") or None


def query(gid):
    """`GET query?gid=`: `{"transaction": {...} | null, "branches": [...]}`."""
    r = requests.get(dtm_server() + "/query", params={"gid": gid}, timeout=10)
    if r.status_code != 200:
        raise AssertionError("query %s answered %d: %s" % (gid, r.status_code, r.text))
    return r.json()


def status(gid):
    """The global status of `gid` (`prepared`, `submitted`, `aborting`,
    `succeed`, `failed`), or None for an unknown gid."""
    transaction = query(gid)["transaction"]
    return transaction["status"] if transaction else None


def wait_status(gid, wanted, within=30.0):
    """Polls `query` until `gid` has status `wanted`; returns the answer.

    Fails if it reaches another final status, or after `within` seconds.
    """
    deadline = time.monotonic() + within
    while True:
        answer = query(gid)
        transaction = answer["transaction"] or {}
        current = transaction.get("status")
        if current == wanted:
            return answer
        if current in ("succeed", "failed"):
            raise AssertionError("%s ended %s, not %s: %s" % (gid, current, wanted, answer))
        if time.monotonic() > deadline:
            raise AssertionError("%s is still %s after %ss: %s" % (gid, current, within, answer))
        time.sleep(0.1)


def rows(answer):
    """A `query` answer's branch rows as `(branch_id, op, status)`, in the
    order the server lists them (DTM: stored order)."""
    return [(b.get("branch_id"), b.get("op"), b.get("status")) for b in answer["branches"]]


def statuses(answer):
    """A `query` answer's branch rows as `{(branch_id, op): status}`, for
    checks that do not depend on the order of the rows."""
    return {(b.get("branch_id"), b.get("op")): b.get("status") for b in answer["branches"]}


def call_module(module, function, payload):
    """Calls a module function through the native API and returns its output."""
    base = wasmtx_server()
    if base is None:
        raise RuntimeError("WASMTX_SERVER is not set")
    url = "%s/v1/modules/%s/call/%s" % (base, module, function)
    r = requests.post(url, json=payload, timeout=10)
    if r.status_code != 200:
        raise AssertionError("%s.%s(%s) answered %d: %s" % (module, function, payload, r.status_code, r.text))
    return r.json()
