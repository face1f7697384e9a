"""A small bank reached as DTM HTTP branches, for the dtmcli suites.

`BankService` listens on 127.0.0.1 (a port of its own) in a thread and serves
`/api/busi/<name>` as DTM's sample business services do: `TransOut` debits
`from`, `TransIn` credits `to`, `TransOutRevert` and `TransInRevert` undo them,
`QueryPrepared` answers a message's back-check. Payloads are
`{"from": ..., "to": ..., "amount": ...}`; balances live in memory.

It is also a TCC bank, as DTM's sample TCC services are: `TransOutTry` and
`TransInTry` (called by the client with `op=try`) only record the amount in
flight (`trading`: negative for a debit, positive for a credit; a debit is
refused when the balance minus what is already in flight cannot cover it);
`TransOutConfirm`/`TransInConfirm` move it into the balance;
`TransOutCancel`/`TransInCancel` release it. `TransOutNested` is the try of
a branch that nests: it opens the TCC again with dtmcli's `tcc_from_req`
and calls `TransOut`'s TCC as its sub-branch (branch id `<its id>01`);
`TransOutNestedConfirm`/`TransOutNestedCancel` only record the call.

Every request is recorded (method, name, query string, body) so that a test
can check how the coordinator called it. Answers follow DTM's branch
protocol: `200 {"dtm_result":"SUCCESS"}`, or a refusal (`409`, or a body
containing `FAILURE`) where a test asked for one. Like DTM's barrier it applies
each (gid, branch_id, op) once, makes a compensation whose action never applied
a null compensation, and ignores an action that arrives after its
compensation; so a coordinator may call a branch again, as DTM may, without
breaking the balances.
"""

import json
import threading

from dtmcli import tcc, utils

from http_service import HttpService

SUCCESS = (200, '{"dtm_result":"SUCCESS"}')
FAILURE = (409, '{"dtm_result":"FAILURE","message":"refused by the test"}')


class BankService(HttpService):
    """The bank: start it, point branches at `url(name)`, read `calls` and
    `balance`, stop it."""

    def __init__(self, balances, dtm=None):
        self.lock = threading.Lock()
        self.balances = dict(balances)
        # account -> amount in flight between a TCC try and its confirm or cancel.
        self.trading = {account: 0 for account in balances}
        # The DTM API, for the nested TCC branch (`TransOutNested`).
        self.dtm = dtm
        self.calls = []
        # (name, gid) -> (status, body) answered instead of running the branch.
        self.refusals = {}
        # (gid, branch_id, op) applied, as DTM's barrier table records them.
        self.applied = set()
        # gid -> "committed" | "rollback": a message's local transaction.
        self.local = {}
        HttpService.__init__(self)

    def refuse(self, name, gid, answer=FAILURE):
        """Branch `name` of `gid` answers `answer` (status, body) and does nothing."""
        with self.lock:
            self.refusals[(name, gid)] = answer

    def balance(self, account):
        with self.lock:
            return self.balances[account]

    def in_flight(self, account):
        """The amount a TCC tried but neither confirmed nor cancelled yet."""
        with self.lock:
            return self.trading[account]

    def calls_of(self, gid):
        """The calls made for `gid`, in arrival order."""
        with self.lock:
            return [c for c in self.calls if c.query.get("gid") == gid]

    def ops(self, gid):
        """`(name, op)` of the calls for `gid` in arrival order, each once."""
        seen = []
        for call in self.calls_of(gid):
            key = (call.name, call.query.get("op"))
            if key not in seen:
                seen.append(key)
        return seen

    def commit_local(self, gid, account, amount):
        """A message's local transaction: debit `account` and remember that
        `gid` committed (what `QueryPrepared` reports)."""
        with self.lock:
            if self.local.get(gid) == "rollback":
                raise RuntimeError("the back-check already rolled %s back" % gid)
            self.balances[account] -= amount
            self.local[gid] = "committed"

    def handle(self, call):
        if call.name == "TransOutNested":
            return self.nested_try(call)
        with self.lock:
            self.calls.append(call)
            gid = call.query.get("gid", "")
            refusal = self.refusals.get((call.name, gid))
            if refusal is not None:
                return refusal
            if call.name in TCC:
                return self.tcc(call)
            if call.name in ("TransOutNestedConfirm", "TransOutNestedCancel"):
                return SUCCESS
            if call.name == "QueryPrepared":
                # Like DTM's barrier: a back-check before the local commit
                # rolls the local transaction back for good.
                state = self.local.setdefault(gid, "rollback")
                return SUCCESS if state == "committed" else FAILURE
            effects = {
                "TransOut": ("from", -1, None),
                "TransOutRevert": ("from", 1, "action"),
                "TransIn": ("to", 1, None),
                "TransInRevert": ("to", -1, "action"),
            }
            if call.name not in effects:
                return (404, '{"message":"no branch %s"}' % call.name)
            account_key, sign, origin = effects[call.name]
            branch = (gid, call.query.get("branch_id"))
            op = call.query.get("op")
            if branch + (op,) in self.applied:
                return SUCCESS
            self.applied.add(branch + (op,))
            if origin is not None and branch + (origin,) not in self.applied:
                # Null compensation; the origin row also blocks a late action.
                self.applied.add(branch + (origin,))
                return SUCCESS
            account = call.body[account_key]
            if sign < 0 and self.balances[account] < call.body["amount"]:
                self.applied.discard(branch + (op,))
                return (409, '{"dtm_result":"FAILURE","message":"insufficient funds in %s"}' % account)
            self.balances[account] += sign * call.body["amount"]
            return SUCCESS

    def nested_try(self, call):
        """The try of a nesting branch: registers and tries `TransOut`'s TCC
        as a sub-branch through dtmcli, as a service that calls another
        service inside its try does. Runs outside the lock: the sub-branch's
        try is a request to this same service."""
        with self.lock:
            self.calls.append(call)
            refusal = self.refusals.get((call.name, call.query.get("gid", "")))
        if refusal is not None:
            return refusal
        sub = tcc.tcc_from_req(self.dtm or "", call.query.get("gid", ""), call.query.get("branch_id", ""))
        try:
            sub.call_branch(call.body, self.url("TransOutTry"), self.url("TransOutConfirm"), self.url("TransOutCancel"))
        except utils.DTMFailureError as e:
            return (409, '{"dtm_result":"FAILURE","message":"sub-branch: %s"}' % e)
        except Exception as e:
            return (500, json.dumps({"message": "sub-branch: %s" % e}))
        return SUCCESS

    def tcc(self, call):
        """One TCC op, under the lock; each (gid, branch_id, op) applies once,
        a cancel without its try is a null cancel, and a try after its cancel
        does nothing (DTM's barrier rules)."""
        account_key, sign, op = TCC[call.name]
        branch = (call.query.get("gid", ""), call.query.get("branch_id"))
        if branch + (op,) in self.applied:
            return SUCCESS
        self.applied.add(branch + (op,))
        if op == "cancel" and branch + ("try",) not in self.applied:
            self.applied.add(branch + ("try",))
            return SUCCESS
        account = call.body[account_key]
        amount = sign * call.body["amount"]
        if op == "try":
            if amount < 0 and self.balances[account] + self.trading[account] + amount < 0:
                self.applied.discard(branch + (op,))
                return (409, '{"dtm_result":"FAILURE","message":"insufficient funds in %s"}' % account)
            self.trading[account] += amount
        elif op == "confirm":
            self.trading[account] -= amount
            self.balances[account] += amount
        else:
            self.trading[account] -= amount
        return SUCCESS


# TCC branch name -> (payload key of the account, sign of the amount, op).
TCC = {
    "TransOutTry": ("from", -1, "try"),
    "TransOutConfirm": ("from", -1, "confirm"),
    "TransOutCancel": ("from", -1, "cancel"),
    "TransInTry": ("to", 1, "try"),
    "TransInConfirm": ("to", 1, "confirm"),
    "TransInCancel": ("to", 1, "cancel"),
}
