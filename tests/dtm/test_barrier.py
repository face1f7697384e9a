"""dtmcli's sub-transaction barrier (`BranchBarrier`) on MySQL, fed by the
coordinator's own calls: the `gid`, `trans_type`, `branch_id` and `op` it
puts in each branch's query string are what the barrier keys its rows on.

Sagas: actions and compensations applied once; a refused action's
compensation is a null compensation; a repeated call is a no-op; an action
that arrives after its compensation (hanging) does nothing. Messages:
`do_and_submit_db` runs the local transaction inside the barrier (branch
`00`, op `msg`); the coordinator's back-check of a message left prepared
goes through `BranchBarrier.query_prepared`, and rolls a local transaction
that had not committed back for good.

Needs MySQL/MariaDB (barrier_bank.py says where; 127.0.0.1:3306, root, by
default): the run fails, with a message saying so, when it is unreachable.
"""

import unittest

from dtmcli import barrier, msg, saga, utils

import barrier_bank
import coordinator
from barrier_bank import BarrierBank

TRANSFER = {"from": "alice", "to": "bob", "amount": 30}
DATABASE = None
# Every gid these cases used: their barrier rows are deleted at the end.
GIDS = []


def setUpModule():
    global DATABASE
    barrier_bank.create_barrier_table()
    DATABASE = barrier_bank.BusinessDatabase()


def tearDownModule():
    if DATABASE is not None:
        DATABASE.drop()
    barrier_bank.delete_barrier_rows(GIDS)


class BarrierCase(unittest.TestCase):
    def setUp(self):
        self.dtm = coordinator.dtm_server()
        DATABASE.reset({"alice": 100, "bob": 0})
        self.bank = BarrierBank(DATABASE).start()
        self.addCleanup(self.bank.stop)

    def new_gid(self):
        gid = utils.gen_gid(self.dtm)
        GIDS.append(gid)
        return gid

    def balances(self):
        return DATABASE.balances("alice", "bob")


class SagaBarrierTest(BarrierCase):
    def transfer(self, gid, payload=TRANSFER):
        s = saga.Saga(self.dtm, gid)
        s.add(payload, self.bank.url("TransOut"), self.bank.url("TransOutRevert"))
        s.add(payload, self.bank.url("TransIn"), self.bank.url("TransInRevert"))
        return s

    def test_a_saga_through_the_barrier_moves_the_money_once(self):
        gid = self.new_gid()
        s = self.transfer(gid)
        s.trans_base.wait_result = True
        s.submit()

        self.assertEqual(coordinator.status(gid), "succeed")
        self.assertEqual(self.balances(), (70, 30))
        # The barrier's rows carry what the coordinator sent in the query string.
        self.assertEqual(
            barrier_bank.barrier_rows(gid),
            [("saga", "01", "action", "01", "action"), ("saga", "02", "action", "01", "action")],
        )

        # Every call delivered again, as a coordinator retrying after a lost
        # answer would: answered SUCCESS, applied no second time.
        rows = barrier_bank.barrier_rows(gid)
        for call in self.bank.calls_of(gid):
            self.assertEqual(self.bank.deliver(call), (200, '{"dtm_result":"SUCCESS"}'), call)
        self.assertEqual(self.balances(), (70, 30))
        self.assertEqual(barrier_bank.barrier_rows(gid), rows)

    def test_a_refused_action_rolls_back_its_barrier_row_and_its_compensation_is_null(self):
        gid = self.new_gid()
        to_nobody = dict(TRANSFER, to="carol")
        s = self.transfer(gid, to_nobody)
        s.trans_base.wait_result = True
        with self.assertRaises(utils.DTMFailureError):
            s.submit()

        answer = coordinator.query(gid)
        self.assertEqual(answer["transaction"]["status"], "failed", answer)
        self.assertEqual(
            self.bank.ops(gid),
            [
                ("TransOut", "action"),
                ("TransIn", "action"),
                ("TransInRevert", "compensate"),
                ("TransOutRevert", "compensate"),
            ],
        )
        # TransIn's own barrier row went with its refused local transaction,
        # so its compensate found no action: the barrier wrote the action row
        # itself (reason compensate) and skipped the business SQL. TransOut's
        # compensate ran and gave the money back.
        self.assertEqual(
            barrier_bank.barrier_rows(gid),
            [
                ("saga", "01", "action", "01", "action"),
                ("saga", "02", "action", "01", "compensate"),
                ("saga", "02", "compensate", "01", "compensate"),
                ("saga", "01", "compensate", "01", "compensate"),
            ],
        )
        self.assertEqual(self.balances(), (100, 0))

    def test_a_compensation_before_its_action_is_null_and_the_late_action_is_ignored(self):
        gid = self.new_gid()
        # The coordinator's TransIn call is held back: answered FAILURE
        # without running, as if still in the network, so the saga rolls
        # back and TransIn's compensate reaches the bank first.
        self.bank.hold("TransIn", gid)
        s = self.transfer(gid)
        s.trans_base.wait_result = True
        with self.assertRaises(utils.DTMFailureError):
            s.submit()
        self.assertEqual(coordinator.status(gid), "failed")
        self.assertEqual(self.balances(), (100, 0))
        rows = barrier_bank.barrier_rows(gid)
        self.assertIn(("saga", "02", "action", "01", "compensate"), rows, "the null compensation blocks the action")

        calls = self.bank.calls_of(gid)
        late = [c for c in calls if c.name == "TransIn"]
        self.assertEqual(len(late), 1, calls)
        self.assertEqual(late[0].query, {"gid": gid, "trans_type": "saga", "branch_id": "02", "op": "action"})
        # The held action arrives now, exactly as the coordinator sent it:
        # the barrier answers SUCCESS and does nothing (hanging prevention).
        self.assertEqual(self.bank.deliver(late[0]), (200, '{"dtm_result":"SUCCESS"}'))
        # A compensation delivered twice gives the money back once.
        revert = [c for c in calls if c.name == "TransOutRevert"]
        self.assertEqual(len(revert), 1, calls)
        self.assertEqual(self.bank.deliver(revert[0]), (200, '{"dtm_result":"SUCCESS"}'))
        self.assertEqual(self.balances(), (100, 0))
        self.assertEqual(barrier_bank.barrier_rows(gid), rows)


class MsgBarrierTest(BarrierCase):
    def message(self, gid):
        return msg.Msg(self.dtm, gid).add(TRANSFER, self.bank.url("TransIn"))

    def cursor(self):
        conn = barrier_bank.connect(DATABASE.name)
        self.addCleanup(conn.close)
        return conn.cursor()

    def test_do_and_submit_db_commits_the_debit_with_its_barrier_row_then_delivers(self):
        gid = self.new_gid()
        m = self.message(gid).set_wait_result()
        m.do_and_submit_db(self.bank.url("QueryPrepared"), self.cursor(), barrier_bank.debit("alice", 30))

        answer = coordinator.query(gid)
        self.assertEqual(answer["transaction"]["status"], "succeed", answer)
        self.assertEqual(self.bank.ops(gid), [("TransIn", "action")], "submitted in time: no back-check")
        self.assertEqual(self.balances(), (70, 30))
        self.assertEqual(
            barrier_bank.barrier_rows(gid),
            [("msg", "00", "msg", "01", "msg"), ("msg", "01", "action", "01", "action")],
        )

    def test_do_and_submit_db_aborts_when_the_local_transaction_refuses(self):
        gid = self.new_gid()
        m = self.message(gid)
        with self.assertRaises(utils.DTMFailureError):
            m.do_and_submit_db(self.bank.url("QueryPrepared"), self.cursor(), barrier_bank.debit("alice", 1000))

        self.assertEqual(coordinator.status(gid), "failed")
        self.assertEqual(self.bank.ops(gid), [])
        self.assertEqual(barrier_bank.barrier_rows(gid), [], "the barrier row went with the refused local transaction")
        self.assertEqual(self.balances(), (100, 0))

    def test_a_message_left_prepared_is_back_checked_through_the_barrier_and_delivered(self):
        gid = self.new_gid()
        m = self.message(gid)
        m.trans_base.timeout_to_fail = 1
        m.prepare(self.bank.url("QueryPrepared"))
        # The local transaction commits with its barrier row; then the client
        # "crashes" before submit.
        barrier.BranchBarrier("msg", gid, "00", "msg").call(self.cursor(), barrier_bank.debit("alice", 30))

        coordinator.wait_status(gid, "succeed")
        self.assertEqual(self.bank.ops(gid), [("QueryPrepared", "msg"), ("TransIn", "action")])
        check = self.bank.calls_of(gid)[0]
        self.assertEqual(check.method, "GET", check)
        self.assertEqual(check.query, {"gid": gid, "trans_type": "msg", "branch_id": "00", "op": "msg"})
        self.assertEqual(self.balances(), (70, 30))
        self.assertEqual(
            barrier_bank.barrier_rows(gid),
            [("msg", "00", "msg", "01", "msg"), ("msg", "01", "action", "01", "action")],
        )

    def test_a_back_check_before_the_local_commit_fails_the_message_and_blocks_the_late_commit(self):
        gid = self.new_gid()
        m = self.message(gid)
        m.trans_base.timeout_to_fail = 1
        m.prepare(self.bank.url("QueryPrepared"))

        # The back-check writes the local transaction's row as "rollback" first.
        coordinator.wait_status(gid, "failed")
        self.assertEqual(self.bank.ops(gid), [("QueryPrepared", "msg")], "the branch is never sent")
        self.assertEqual(barrier_bank.barrier_rows(gid), [("msg", "00", "msg", "01", "rollback")])
        # The local transaction, late, cannot commit any more.
        with self.assertRaisesRegex(Exception, "msg duplicate error"):
            barrier.BranchBarrier("msg", gid, "00", "msg").call(self.cursor(), barrier_bank.debit("alice", 30))
        self.assertEqual(self.balances(), (100, 0))


if __name__ == "__main__":
    unittest.main()
