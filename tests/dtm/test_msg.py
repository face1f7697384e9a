"""Two-phase messages with dtmcli's `Msg`: prepare, the local transaction,
submit; the coordinator's back-check (`query_prepared`) of a message left
prepared past its `timeout_to_fail`; and `do_and_submit`, whose business
refusal aborts the message.
"""

import unittest

from dtmcli import msg, utils

import coordinator
from bank_service import BankService

TRANSFER = {"from": "alice", "to": "bob", "amount": 30}


class MsgTest(unittest.TestCase):
    def setUp(self):
        self.bank = BankService({"alice": 100, "bob": 0}).start()
        self.addCleanup(self.bank.stop)
        self.dtm = coordinator.dtm_server()

    def message(self, gid):
        """The transfer's credit, sent once the debit (the local transaction) commits."""
        return msg.Msg(self.dtm, gid).add(TRANSFER, self.bank.url("TransIn"))

    def test_prepare_then_submit_delivers_the_branch(self):
        gid = utils.gen_gid(self.dtm)
        m = self.message(gid).set_wait_result()
        m.prepare(self.bank.url("QueryPrepared"))
        self.assertEqual(coordinator.status(gid), "prepared")
        self.bank.commit_local(gid, "alice", 30)
        m.submit()

        answer = coordinator.query(gid)
        self.assertEqual(answer["transaction"]["status"], "succeed", answer)
        self.assertEqual(answer["transaction"]["trans_type"], "msg")
        self.assertEqual(coordinator.statuses(answer).get(("01", "action")), "succeed", answer)
        self.assertEqual(self.bank.ops(gid), [("TransIn", "action")], "no back-check was needed")
        call = self.bank.calls_of(gid)[0]
        self.assertEqual((call.method, call.query.get("trans_type"), call.query.get("branch_id")), ("POST", "msg", "01"))
        self.assertEqual(call.body, TRANSFER)
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))

    def test_query_lists_one_row_per_action_and_nothing_else(self):
        # In DTM a message's rows are its actions; the local transaction's
        # "00"/"msg" record lives in the business's barrier table.
        gid = utils.gen_gid(self.dtm)
        m = self.message(gid)
        m.add({"from": "alice", "to": "bob", "amount": 1}, self.bank.url("TransIn"))
        m.prepare(self.bank.url("QueryPrepared"))
        self.assertEqual(
            coordinator.rows(coordinator.query(gid)), [("01", "action", "prepared"), ("02", "action", "prepared")]
        )
        self.bank.commit_local(gid, "alice", 31)
        m.set_wait_result().submit()
        self.assertEqual(
            coordinator.rows(coordinator.query(gid)), [("01", "action", "succeed"), ("02", "action", "succeed")]
        )

    def test_a_message_left_prepared_is_back_checked_and_delivered(self):
        gid = utils.gen_gid(self.dtm)
        m = self.message(gid)
        # dtmcli sends its trans_base's options as they are; it has no setter.
        m.trans_base.timeout_to_fail = 1
        m.prepare(self.bank.url("QueryPrepared"))
        self.bank.commit_local(gid, "alice", 30)
        # The client "crashes" here: no submit.

        answer = coordinator.wait_status(gid, "succeed")
        self.assertEqual(coordinator.statuses(answer).get(("01", "action")), "succeed", answer)
        self.assertEqual(self.bank.ops(gid), [("QueryPrepared", "msg"), ("TransIn", "action")])
        check = self.bank.calls_of(gid)[0]
        self.assertEqual(check.method, "GET", check)
        self.assertEqual((check.query.get("trans_type"), check.query.get("branch_id")), ("msg", "00"), check)
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))

    def test_a_back_check_before_the_local_commit_fails_the_message(self):
        gid = utils.gen_gid(self.dtm)
        m = self.message(gid)
        m.trans_base.timeout_to_fail = 1
        m.prepare(self.bank.url("QueryPrepared"))
        # The local transaction never commits: the back-check answers FAILURE.

        coordinator.wait_status(gid, "failed")
        self.assertEqual(self.bank.ops(gid), [("QueryPrepared", "msg")], "the branch is never sent")
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (100, 0))

    def test_do_and_submit_commits_locally_then_delivers(self):
        gid = utils.gen_gid(self.dtm)
        m = self.message(gid).set_wait_result()
        # The callback gets dtmcli's barrier (MySQL only); this bank keeps its
        # local transaction in memory instead.
        m.do_and_submit(self.bank.url("QueryPrepared"), lambda barrier: self.bank.commit_local(gid, "alice", 30))

        self.assertEqual(coordinator.status(gid), "succeed")
        self.assertEqual(self.bank.ops(gid), [("TransIn", "action")])
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))

    def test_do_and_submit_aborts_the_message_when_the_business_refuses(self):
        gid = utils.gen_gid(self.dtm)
        m = self.message(gid)

        def refuse(barrier):
            raise utils.DTMFailureError("insufficient funds in alice")

        with self.assertRaises(utils.DTMFailureError):
            m.do_and_submit(self.bank.url("QueryPrepared"), refuse)
        # dtmcli called abort: the prepared message is failed at once.
        self.assertEqual(coordinator.status(gid), "failed")
        self.assertEqual(self.bank.ops(gid), [])
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (100, 0))


if __name__ == "__main__":
    unittest.main()
