"""Sagas built and submitted with dtmcli's `Saga`, over HTTP branches of the
test's own bank service: the coordinator calls each action with `op=action`,
and after a refusal compensates every action that ran, the refused one
included, in reverse order, and ends `failed`.
"""

import unittest

from dtmcli import saga, utils

import coordinator
from bank_service import BankService

TRANSFER = {"from": "alice", "to": "bob", "amount": 30}


class SagaTest(unittest.TestCase):
    def setUp(self):
        self.bank = BankService({"alice": 100, "bob": 0}).start()
        self.addCleanup(self.bank.stop)
        self.dtm = coordinator.dtm_server()

    def transfer(self, gid):
        """The transfer saga as dtmcli users write it: two steps, each an
        action and its compensation."""
        s = saga.Saga(self.dtm, gid)
        s.add(TRANSFER, self.bank.url("TransOut"), self.bank.url("TransOutRevert"))
        s.add(TRANSFER, self.bank.url("TransIn"), self.bank.url("TransInRevert"))
        return s

    def test_a_saga_with_wait_result_runs_both_actions_before_submit_returns(self):
        gid = utils.gen_gid(self.dtm)
        s = self.transfer(gid)
        # dtmcli 1.7.7.0 has no setter for wait_result on a saga.
        s.trans_base.wait_result = True
        s.submit()

        self.assertEqual(coordinator.status(gid), "succeed", "wait_result: final when submit returns")
        self.assertEqual(self.bank.ops(gid), [("TransOut", "action"), ("TransIn", "action")])
        for call, branch_id in zip(self.bank.calls_of(gid), ["01", "02"]):
            self.assertEqual(call.method, "POST", call)
            self.assertEqual(call.query.get("trans_type"), "saga", call)
            self.assertEqual(call.query.get("branch_id"), branch_id, call)
            self.assertEqual(call.body, TRANSFER, call)
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))

        answer = coordinator.query(gid)
        self.assertEqual(answer["transaction"]["gid"], gid)
        self.assertEqual(answer["transaction"]["trans_type"], "saga")
        self.assertEqual(
            coordinator.statuses(answer),
            {
                ("01", "compensate"): "prepared",
                ("01", "action"): "succeed",
                ("02", "compensate"): "prepared",
                ("02", "action"): "succeed",
            },
        )

    def test_query_lists_each_steps_compensate_row_before_its_action_row(self):
        # DTM stores a saga's rows in that order and query returns them in
        # stored order; its own tests and tools read them by position.
        gid = utils.gen_gid(self.dtm)
        self.bank.refuse("TransIn", gid)
        s = self.transfer(gid)
        s.trans_base.wait_result = True
        with self.assertRaises(utils.DTMFailureError):
            s.submit()
        self.assertEqual(
            coordinator.rows(coordinator.query(gid)),
            [
                ("01", "compensate", "succeed"),
                ("01", "action", "succeed"),
                ("02", "compensate", "succeed"),
                ("02", "action", "failed"),
            ],
        )

    def test_a_409_from_the_second_action_compensates_both_and_submit_reports_failure(self):
        gid = utils.gen_gid(self.dtm)
        self.bank.refuse("TransIn", gid)
        s = self.transfer(gid)
        s.trans_base.wait_result = True
        # With wait_result, an outcome other than succeed is a 409 to the client.
        with self.assertRaises(utils.DTMFailureError):
            s.submit()
        self.assert_rolled_back(coordinator.query(gid), gid)

    def test_a_failure_body_from_the_second_action_rolls_the_saga_back(self):
        gid = utils.gen_gid(self.dtm)
        self.bank.refuse("TransIn", gid, (200, '{"dtm_result":"FAILURE"}'))
        self.transfer(gid).submit()
        self.assert_rolled_back(coordinator.wait_status(gid, "failed"), gid)

    def assert_rolled_back(self, answer, gid):
        self.assertEqual(answer["transaction"]["status"], "failed", answer)
        self.assertTrue(answer["transaction"].get("rollback_reason"), "the reason is kept: %s" % answer)
        self.assertEqual(
            self.bank.ops(gid),
            [
                ("TransOut", "action"),
                ("TransIn", "action"),
                ("TransInRevert", "compensate"),
                ("TransOutRevert", "compensate"),
            ],
        )
        # Every action that ran is compensated, the refused one included.
        self.assertEqual(
            coordinator.statuses(answer),
            {
                ("01", "compensate"): "succeed",
                ("01", "action"): "succeed",
                ("02", "compensate"): "succeed",
                ("02", "action"): "failed",
            },
        )
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (100, 0))

    def test_a_concurrent_saga_with_orders_runs_the_second_step_after_the_first(self):
        gid = utils.gen_gid(self.dtm)
        s = self.transfer(gid)
        s.set_concurrent()
        # dtmcli 1.7.7.0 never sets `orders` (add_branch_order fails) and
        # reads `concurrent` from the saga rather than its trans_base: set both.
        s.orders = {}
        s.concurrent = True
        s.add_branch_order(1, [0])
        s.trans_base.wait_result = True
        s.submit()

        self.assertEqual(coordinator.status(gid), "succeed")
        self.assertEqual(self.bank.ops(gid), [("TransOut", "action"), ("TransIn", "action")])
        self.assertEqual((self.bank.balance("alice"), self.bank.balance("bob")), (70, 30))


if __name__ == "__main__":
    unittest.main()
