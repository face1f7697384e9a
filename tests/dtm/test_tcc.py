"""TCC driven by dtmcli's `tcc_global_transaction`: the client prepares the
global transaction, registers each branch (`registerBranch`) before calling
its try itself (`op=try`), then submits, or aborts when a try fails. The
coordinator then calls every branch's confirm (after submit) or cancel
(after abort), last registered first, as DTM does, with the branch's data as
the body and `gid`, `trans_type=tcc`, `branch_id`, `op` in the query string.
Branch services are the TCC side of the test bank (bank_service.py): a try
only puts the amount in flight; confirm moves it; cancel releases it.
"""

import unittest

import requests
from dtmcli import tcc, utils

import coordinator
from bank_service import BankService

TRANSFER = {"from": "alice", "to": "bob", "amount": 30}


class TccTest(unittest.TestCase):
    def setUp(self):
        self.dtm = coordinator.dtm_server()
        self.bank = BankService({"alice": 100, "bob": 0}, dtm=self.dtm).start()
        self.addCleanup(self.bank.stop)
        # What the bank and the coordinator looked like between the tries and submit.
        self.seen_before_submit = None

    def branch(self, t, name):
        """Registers and tries branch `name` (`TransOut` or `TransIn`)."""
        url = self.bank.url
        t.call_branch(TRANSFER, url(name + "Try"), url(name + "Confirm"), url(name + "Cancel"))

    def transfer(self, gid, out="TransOut"):
        """The transfer as dtmcli users write it; `out="TransOutNested"` makes
        the debit a nesting branch whose try registers `TransOut` below it."""

        def body(t):
            if out == "TransOutNested":
                url = self.bank.url
                t.call_branch(TRANSFER, url(out), url(out + "Confirm"), url(out + "Cancel"))
            else:
                self.branch(t, out)
            self.branch(t, "TransIn")
            self.seen_before_submit = {
                "status": coordinator.status(gid),
                "rows": coordinator.rows(coordinator.query(gid)),
                "balances": (self.bank.balance("alice"), self.bank.balance("bob")),
                "in_flight": (self.bank.in_flight("alice"), self.bank.in_flight("bob")),
            }

        return tcc.tcc_global_transaction(self.dtm, gid, body)

    def assert_untouched(self):
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (100, 0))
        self.assertEqual((self.bank.in_flight("alice"), self.bank.in_flight("bob")), (0, 0))

    def test_all_tries_succeed_then_submit_confirms_every_branch(self):
        gid = utils.gen_gid(self.dtm)
        self.assertEqual(self.transfer(gid), gid, "tcc_global_transaction returns the gid on success")

        # After the tries: registered, nothing confirmed, the amount in flight only.
        self.assertEqual(
            self.seen_before_submit,
            {
                "status": "prepared",
                "rows": [
                    ("01", "cancel", "prepared"),
                    ("01", "confirm", "prepared"),
                    ("02", "cancel", "prepared"),
                    ("02", "confirm", "prepared"),
                ],
                "balances": (100, 0),
                "in_flight": (-30, 30),
            },
        )
        answer = coordinator.wait_status(gid, "succeed")
        self.assertEqual(answer["transaction"]["trans_type"], "tcc")
        self.assertEqual(
            coordinator.rows(answer),
            [
                ("01", "cancel", "prepared"),
                ("01", "confirm", "succeed"),
                ("02", "cancel", "prepared"),
                ("02", "confirm", "succeed"),
            ],
        )
        # The client's tries in order, then the coordinator's confirms, last
        # branch first: DTM walks the rows from the last to the first for
        # confirm as for cancel (dtm.md 2.2).
        self.assertEqual(
            self.bank.ops(gid),
            [
                ("TransOutTry", "try"),
                ("TransInTry", "try"),
                ("TransInConfirm", "confirm"),
                ("TransOutConfirm", "confirm"),
            ],
            "DTM confirms the last registered branch first",
        )
        confirms = [c for c in self.bank.calls_of(gid) if c.query.get("op") == "confirm"]
        self.assertEqual([(c.name, c.query.get("branch_id")) for c in confirms], [("TransInConfirm", "02"), ("TransOutConfirm", "01")])
        for call in confirms:
            self.assertEqual((call.method, call.query.get("trans_type")), ("POST", "tcc"), call)
            self.assertEqual(call.body, TRANSFER, "the registered data is the body: %s" % call)
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))
        self.assertEqual((self.bank.in_flight("alice"), self.bank.in_flight("bob")), (0, 0))

    def test_a_refused_try_aborts_and_every_registered_branch_is_cancelled(self):
        gid = utils.gen_gid(self.dtm)
        self.bank.refuse("TransInTry", gid)
        # dtmcli catches the failure, calls abort and returns "".
        self.assertEqual(self.transfer(gid), "")

        answer = coordinator.wait_status(gid, "failed")
        self.assertEqual(
            coordinator.rows(answer),
            [
                ("01", "cancel", "succeed"),
                ("01", "confirm", "prepared"),
                ("02", "cancel", "succeed"),
                ("02", "confirm", "prepared"),
            ],
        )
        # Both branches were registered before their tries, so both are
        # cancelled, the refused one included, last first.
        self.assertEqual(
            self.bank.ops(gid),
            [
                ("TransOutTry", "try"),
                ("TransInTry", "try"),
                ("TransInCancel", "cancel"),
                ("TransOutCancel", "cancel"),
            ],
        )
        for call in self.bank.calls_of(gid):
            if call.query.get("op") == "cancel":
                self.assertEqual((call.method, call.query.get("trans_type")), ("POST", "tcc"), call)
                self.assertEqual(call.body, TRANSFER, call)
        self.assert_untouched()

        # The transaction is over: a late branch cannot join it.
        r = requests.post(
            self.dtm + "/registerBranch",
            json={"gid": gid, "branch_id": "03", "trans_type": "tcc", "data": "{}", "confirm": "", "cancel": ""},
            timeout=10,
        )
        self.assertEqual(r.status_code, 409, r.text)

    def test_a_try_beyond_the_balance_is_refused_by_the_business_and_rolls_back(self):
        gid = utils.gen_gid(self.dtm)
        big = dict(TRANSFER, amount=1000)

        def body(t):
            url = self.bank.url
            t.call_branch(big, url("TransOutTry"), url("TransOutConfirm"), url("TransOutCancel"))
            t.call_branch(big, url("TransInTry"), url("TransInConfirm"), url("TransInCancel"))

        self.assertEqual(tcc.tcc_global_transaction(self.dtm, gid, body), "")
        coordinator.wait_status(gid, "failed")
        # The first try refused: the second branch was never registered or tried.
        self.assertEqual(self.bank.ops(gid), [("TransOutTry", "try"), ("TransOutCancel", "cancel")])
        self.assertEqual(coordinator.rows(coordinator.query(gid)), [("01", "cancel", "succeed"), ("01", "confirm", "prepared")])
        self.assert_untouched()

    def test_a_nested_branch_registers_its_sub_branch_and_both_are_confirmed(self):
        gid = utils.gen_gid(self.dtm)
        self.assertEqual(self.transfer(gid, out="TransOutNested"), gid)

        self.assertEqual(self.seen_before_submit["in_flight"], (-30, 30))
        answer = coordinator.wait_status(gid, "succeed")
        # Rows in registration order: 01, its sub-branch 0101, then 02.
        self.assertEqual(
            coordinator.rows(answer),
            [
                ("01", "cancel", "prepared"),
                ("01", "confirm", "succeed"),
                ("0101", "cancel", "prepared"),
                ("0101", "confirm", "succeed"),
                ("02", "cancel", "prepared"),
                ("02", "confirm", "succeed"),
            ],
        )
        self.assertEqual(
            [(c.name, c.query.get("branch_id"), c.query.get("op")) for c in self.bank.calls_of(gid)],
            [
                ("TransOutNested", "01", "try"),
                ("TransOutTry", "0101", "try"),
                ("TransInTry", "02", "try"),
                ("TransInConfirm", "02", "confirm"),
                ("TransOutConfirm", "0101", "confirm"),
                ("TransOutNestedConfirm", "01", "confirm"),
            ],
            "DTM confirms the last registered branch first",
        )
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))
        self.assertEqual((self.bank.in_flight("alice"), self.bank.in_flight("bob")), (0, 0))

    def test_a_refused_try_after_a_nested_branch_cancels_the_sub_branch_too(self):
        gid = utils.gen_gid(self.dtm)
        self.bank.refuse("TransInTry", gid)
        self.assertEqual(self.transfer(gid, out="TransOutNested"), "")

        answer = coordinator.wait_status(gid, "failed")
        self.assertEqual(
            coordinator.statuses(answer),
            {
                ("01", "cancel"): "succeed",
                ("01", "confirm"): "prepared",
                ("0101", "cancel"): "succeed",
                ("0101", "confirm"): "prepared",
                ("02", "cancel"): "succeed",
                ("02", "confirm"): "prepared",
            },
        )
        cancels = [(c.name, c.query.get("branch_id")) for c in self.bank.calls_of(gid) if c.query.get("op") == "cancel"]
        self.assertEqual(cancels, [("TransInCancel", "02"), ("TransOutCancel", "0101"), ("TransOutNestedCancel", "01")])
        self.assert_untouched()


if __name__ == "__main__":
    unittest.main()
