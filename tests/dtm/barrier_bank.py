"""A bank on MySQL (the local MariaDB) whose branches are guarded by dtmcli's
sub-transaction barrier, `dtmcli.barrier.BranchBarrier`, for the barrier suites.

dtmcli 1.7.7.0's barrier writes MySQL SQL into a fixed table,
`dtm_barrier.barrier` (`insert ignore into dtm_barrier.barrier(...)`; the
Python client has no setting for another name), and runs the business code
on the same cursor, committing both together. `create_barrier_table` makes
that table as DTM's `sqls/busi.barrier.mysql.sql` does, if it is missing; it
is shared by every run, so the suites use fresh gids and delete their rows at
the end. The business data lives in a database of its own per run
(`wasmtx_dtm_<random>`, table `accounts(id, balance)`), dropped at the end.

The server to use comes from `DTM_MYSQL_HOST` (127.0.0.1), `DTM_MYSQL_PORT`
(3306), `DTM_MYSQL_USER` (root) and `DTM_MYSQL_PASSWORD` (empty). When it
cannot be reached, `connect` fails with a message saying so: these suites
are never skipped.

`BarrierBank` serves `/api/busi/<name>` on 127.0.0.1 like bank_service.py:
`TransOut`/`TransIn` (saga actions; a msg's branch), `TransOutRevert`/
`TransInRevert` (their compensations), and `QueryPrepared` (a message's
back-check, `BranchBarrier.query_prepared`). Each request builds its barrier
from the `gid`, `trans_type`, `branch_id` and `op` the coordinator put in the
query string (all four required, as DTM's `BarrierFromQuery` does) and runs
its business SQL inside `BranchBarrier.call` on a new connection.
"""

import json
import os
import threading
import uuid
from urllib.parse import urlencode

import pymysql
import requests
from dtmcli import barrier, utils

from http_service import HttpService

SUCCESS = (200, '{"dtm_result":"SUCCESS"}')

# DTM's sqls/busi.barrier.mysql.sql, without its `drop table`: other runs share the table.
BARRIER_DDL = [
    "create database if not exists dtm_barrier /*!40100 DEFAULT CHARACTER SET utf8mb4 */",
    """create table if not exists dtm_barrier.barrier(
  id bigint(22) PRIMARY KEY AUTO_INCREMENT,
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '' comment 'the branch type who insert this record',
  create_time datetime DEFAULT now(),
  update_time datetime DEFAULT now(),
  key(create_time),
  key(update_time),
  UNIQUE key(gid, branch_id, op, barrier_id)
)""",
]


def settings():
    """Where MySQL is: host, port, user, password."""
    return (
        os.environ.get("DTM_MYSQL_HOST", "127.0.0.1"),
        int(os.environ.get("DTM_MYSQL_PORT", "3306")),
        os.environ.get("DTM_MYSQL_USER", "root"),
        os.environ.get("DTM_MYSQL_PASSWORD", ""),
    )


def connect(database=None):
    """A new connection (autocommit off), or an AssertionError that says
    MySQL is unreachable and how to point the suites at it."""
    host, port, user, password = settings()
    try:
        return pymysql.connect(
            host=host, port=port, user=user, password=password, database=database, autocommit=False, connect_timeout=5
        )
    except pymysql.err.MySQLError as e:
        raise AssertionError(
            "MySQL/MariaDB at %s:%d (user %r) is unreachable: %s. The dtmcli barrier suites need it: start MariaDB, "
            "or set DTM_MYSQL_HOST/DTM_MYSQL_PORT/DTM_MYSQL_USER/DTM_MYSQL_PASSWORD" % (host, port, user, e)
        )


def execute(sql, args=None, database=None):
    """Runs one statement on its own connection and commits; returns the rows."""
    conn = connect(database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql, args)
            rows = cursor.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def create_barrier_table():
    for statement in BARRIER_DDL:
        execute(statement)


class BusinessDatabase(object):
    """This run's business database: `accounts(id, balance)`."""

    def __init__(self):
        self.name = "wasmtx_dtm_%s" % uuid.uuid4().hex[:12]
        execute("create database `%s`" % self.name)
        execute("create table accounts(id varchar(64) primary key, balance int not null)", database=self.name)

    def drop(self):
        execute("drop database if exists `%s`" % self.name)

    def reset(self, balances):
        conn = connect(self.name)
        try:
            with conn.cursor() as cursor:
                cursor.execute("delete from accounts")
                for account, balance in balances.items():
                    cursor.execute("insert into accounts(id, balance) values (%s, %s)", (account, balance))
            conn.commit()
        finally:
            conn.close()

    def balance(self, account):
        rows = execute("select balance from accounts where id = %s", (account,), database=self.name)
        return rows[0][0] if rows else None

    def balances(self, *accounts):
        return tuple(self.balance(a) for a in accounts)


def barrier_rows(gid):
    """`(trans_type, branch_id, op, barrier_id, reason)` of `gid`'s barrier rows, in insertion order."""
    return list(
        execute(
            "select trans_type, branch_id, op, barrier_id, reason from dtm_barrier.barrier where gid = %s order by id",
            (gid,),
        )
    )


def delete_barrier_rows(gids):
    for gid in gids:
        execute("delete from dtm_barrier.barrier where gid = %s", (gid,))


def debit(account, amount):
    """Business SQL: takes `amount` from `account`, or refuses (FAILURE) when
    the account is missing or short; run inside `BranchBarrier.call`."""

    def run(cursor):
        changed = cursor.execute(
            "update accounts set balance = balance - %s where id = %s and balance >= %s", (amount, account, amount)
        )
        if changed != 1:
            raise utils.DTMFailureError("insufficient funds in %s" % account)

    return run


def credit(account, amount):
    """Business SQL: adds `amount` to `account`, or refuses (FAILURE) when it is missing."""

    def run(cursor):
        if cursor.execute("update accounts set balance = balance + %s where id = %s", (amount, account)) != 1:
            raise utils.DTMFailureError("no account %s" % account)

    return run


class BarrierBank(HttpService):
    """The barrier-guarded bank over `database` (a BusinessDatabase)."""

    def __init__(self, database):
        self.database = database
        self.lock = threading.Lock()
        self.calls = []
        # (name, gid): the first such request is held (recorded, answered
        # FAILURE, never run), as if it were still on its way.
        self.held = set()
        HttpService.__init__(self)

    def hold(self, name, gid):
        """The first request for branch `name` of `gid` is held: answered
        FAILURE without running, and kept for a late `deliver`."""
        with self.lock:
            self.held.add((name, gid))

    def calls_of(self, gid):
        with self.lock:
            return [c for c in self.calls if c.query.get("gid") == gid]

    def ops(self, gid):
        return [(c.name, c.query.get("op")) for c in self.calls_of(gid)]

    def deliver(self, call):
        """Sends `call` to the bank again exactly as it first arrived
        (method, query string, body): a duplicate, or a late delivery.
        Returns the answer (status, body)."""
        url = "%s?%s" % (self.url(call.name), urlencode(call.query))
        headers = {"Content-Type": "application/json"}
        r = requests.request(call.method, url, data=call.raw.encode(), headers=headers, timeout=10)
        return r.status_code, r.text

    def handle(self, call):
        with self.lock:
            self.calls.append(call)
            key = (call.name, call.query.get("gid", ""))
            if key in self.held:
                self.held.discard(key)
                return (409, '{"dtm_result":"FAILURE","message":"held by the test"}')
        missing = [k for k in ("gid", "trans_type", "branch_id", "op") if not call.query.get(k)]
        if missing:
            return (400, json.dumps({"message": "the barrier needs %s in the query string" % ", ".join(missing)}))
        q = call.query
        bb = barrier.BranchBarrier(q["trans_type"], q["gid"], q["branch_id"], q["op"])
        conn = connect(self.database.name)
        try:
            with conn.cursor() as cursor:
                if call.name == "QueryPrepared":
                    bb.query_prepared(cursor)
                    return SUCCESS
                body = call.body or {}
                business = {
                    "TransOut": lambda: debit(body["from"], body["amount"]),
                    "TransIn": lambda: credit(body["to"], body["amount"]),
                    "TransOutRevert": lambda: credit(body["from"], body["amount"]),
                    "TransInRevert": lambda: debit(body["to"], body["amount"]),
                }.get(call.name)
                if business is None:
                    return (404, json.dumps({"message": "no branch %s" % call.name}))
                bb.call(cursor, business())
                return SUCCESS
        except utils.DTMFailureError as e:
            return (409, json.dumps({"dtm_result": "FAILURE", "message": str(e)}))
        except Exception as e:
            return (500, json.dumps({"message": "%s: %s" % (type(e).__name__, e)}))
        finally:
            conn.close()
