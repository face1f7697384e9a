"""Gids from the coordinator through dtmcli's `utils.gen_gid` (`GET newGid`)."""

import unittest

import requests
from dtmcli import utils

import coordinator


class GidTest(unittest.TestCase):
    def test_gen_gid_returns_a_new_usable_gid_each_time(self):
        dtm = coordinator.dtm_server()
        gids = [utils.gen_gid(dtm) for _ in range(3)]
        self.assertEqual(len(set(gids)), 3, gids)
        for gid in gids:
            self.assertTrue(gid, gids)
            self.assertLessEqual(len(gid), 128, gid)
            for character in "\n\r; ":
                self.assertNotIn(character, gid)
            # A fresh gid names no transaction yet.
            self.assertEqual(coordinator.query(gid), {"transaction": None, "branches": []})

    def test_new_gid_answers_in_dtm_shape(self):
        r = requests.get(coordinator.dtm_server() + "/newGid", timeout=10)
        self.assertEqual(r.status_code, 200, r.text)
        body = r.json()
        self.assertEqual(body.get("dtm_result"), "SUCCESS", body)
        self.assertIsInstance(body.get("gid"), str, body)


if __name__ == "__main__":
    unittest.main()
