"""Sagas built with dtmcli whose steps are `wasm://module/function` URLs:
functions of a module the coordinator runs in its sandbox, here the example
bank uploaded as `bank` (tests/e2e/dtm_clients.rs uploads it and seeds the
accounts `alice` and `bob`). The balances are read with the module's
`balance` function through the native API, so these cases need
`WASMTX_SERVER`; against another DTM server they are skipped.
"""

import unittest

from dtmcli import saga, utils

import coordinator


def wasm(function):
    return "wasm://bank/" + function


def balance(account):
    return coordinator.call_module("bank", "balance", {"id": account})["balance"]


@unittest.skipIf(coordinator.wasmtx_server() is None, "WASMTX_SERVER is not set: Wasm steps are wasmtx's")
class WasmSagaTest(unittest.TestCase):
    def setUp(self):
        self.dtm = coordinator.dtm_server()

    def transfer(self, gid, to, amount):
        payload = {"from": "alice", "to": to, "amount": amount}
        s = saga.Saga(self.dtm, gid)
        s.add(payload, wasm("trans-out"), wasm("trans-out-revert"))
        s.add(payload, wasm("trans-in"), wasm("trans-in-revert"))
        return s

    def test_a_saga_of_wasm_steps_moves_the_money(self):
        before = (balance("alice"), balance("bob"))
        gid = utils.gen_gid(self.dtm)
        s = self.transfer(gid, "bob", 30)
        s.trans_base.wait_result = True
        s.submit()

        answer = coordinator.query(gid)
        self.assertEqual(answer["transaction"]["status"], "succeed", answer)
        self.assertEqual(
            coordinator.statuses(answer),
            {
                ("01", "compensate"): "prepared",
                ("01", "action"): "succeed",
                ("02", "compensate"): "prepared",
                ("02", "action"): "succeed",
            },
        )
        self.assertEqual((balance("alice"), balance("bob")), (before[0] - 30, before[1] + 30))

    def test_a_refused_wasm_step_is_compensated(self):
        before = balance("alice")
        gid = utils.gen_gid(self.dtm)
        # carol has no account: trans-in refuses, trans-out is compensated.
        self.transfer(gid, "carol", 30).submit()

        answer = coordinator.wait_status(gid, "failed")
        reason = answer["transaction"].get("rollback_reason") or ""
        self.assertIn("carol", reason, "the reason is the module's refusal: %s" % answer)
        self.assertEqual(
            coordinator.statuses(answer),
            {
                ("01", "compensate"): "succeed",
                ("01", "action"): "succeed",
                ("02", "compensate"): "succeed",
                ("02", "action"): "failed",
            },
        )
        self.assertEqual(balance("alice"), before)


if __name__ == "__main__":
    unittest.main()
