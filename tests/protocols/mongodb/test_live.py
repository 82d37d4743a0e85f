"""Live MongoDB: SecantusDB (a MongoDB wire-protocol server from PyPI) and pymongo, captured through AF_PACKET.

The truth is pymongo's own command log (its CommandListener: every command with its wire requestID,
database, and the reply's outcome or failure codeName). packetd must report each command once, with the
right command name, database, collection and status; an unacknowledged (w=0) write is a oneway record;
the only other records are the driver's connection handshakes and server-monitoring hellos.
"""

from __future__ import annotations

import pymongo
import pytest
from pymongo import monitoring
from pymongo.write_concern import WriteConcern

from tests.helpers.live import live_marks, live_traffic
from tests.helpers.servers import Secantus, secantus_available

pytestmark = live_marks((secantus_available(), "secantusdb"))

MONITORING = {"hello", "isMaster", "ismaster"}


class Commands(monitoring.CommandListener):
    """pymongo's log of what it sent and what came back."""

    def __init__(self) -> None:
        self.sent: dict[int, tuple[str, str, str | None]] = {}  # request id → (command, db, collection)
        self.outcome: dict[int, str] = {}  # request id → "OK" or the failure's codeName

    def started(self, event: monitoring.CommandStartedEvent) -> None:  # type: ignore[override]
        value = event.command.get(event.command_name)
        coll = value if isinstance(value, str) else event.command.get("collection")
        self.sent[event.request_id] = (event.command_name, event.database_name, coll)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        reply = event.reply
        werr = reply.get("writeErrors")
        self.outcome[event.request_id] = str(werr[0]["code"]) if werr else "OK"

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.outcome[event.request_id] = event.failure.get("codeName") or str(event.failure.get("code"))


def workload(port: int, log: Commands) -> dict[str, int]:
    client = pymongo.MongoClient("127.0.0.1", port, event_listeners=[log], serverSelectionTimeoutMS=10000)
    users = client.app.users
    users.insert_one({"name": "ann", "age": 31})
    users.insert_many([{"name": n, "age": 20 + i} for i, n in enumerate(["bob", "cy", "dee", "eve"])])
    found = list(users.find({"age": {"$gt": 0}}, batch_size=2))  # find, then getMore batches
    assert len(found) == 5
    users.update_many({"age": {"$lt": 23}}, {"$set": {"young": True}})
    users.delete_one({"name": "eve"})
    with pytest.raises(pymongo.errors.OperationFailure):
        client.app.command({"find": "users", "filter": {"$bad": 1}})
    users.with_options(write_concern=WriteConcern(w=0)).insert_one({"name": "fire-and-forget"})
    counted = users.count_documents({})
    client.close()
    return {"found": len(found), "count": counted}


@pytest.fixture(scope="module")
def traffic() -> dict:
    server = Secantus()
    log = Commands()
    run = live_traffic(server, f"mongodb;{server.port}", lambda: workload(server.port, log))
    return {"log": log, "records": run.records, "result": run.result}


def test_every_command_once_with_its_outcome(traffic: dict) -> None:
    log: Commands = traffic["log"]
    ours: dict[int, dict] = {}
    for rec in traffic["records"]:
        if rec["request"] is not None:
            assert rec["request"]["request_id"] not in ours
            ours[rec["request"]["request_id"]] = rec
    assert len(log.sent) >= 10 and len(log.outcome) == len(log.sent)
    for rid, (command, db, coll) in log.sent.items():
        rec = ours[rid]
        q = rec["request"]
        assert (q["command"], q["database"]) == (command, db), rec
        if coll is not None and command != "getMore":
            assert q["collection"] == coll
        if rec["kind"] == "oneway":
            assert "moreToCome" in q["flags"] and command == "insert"
        else:
            assert rec["status"] == log.outcome[rid], rec


def test_nothing_else_but_handshakes_and_monitoring(traffic: dict) -> None:
    log: Commands = traffic["log"]
    others = [
        r for r in traffic["records"] if r["request"] is None or r["request"]["request_id"] not in log.sent
    ]
    assert others, "pymongo's connection handshakes are on the wire"
    assert {r["operation"] for r in others} <= MONITORING
    assert any(r["kind"] == "handshake" for r in others)
    # the monitor's awaitable hello (it waits up to maxAwaitTimeMS for a topology change) may still be
    # waiting when the client closes: the only request allowed to end unanswered
    unanswered = [r for r in traffic["records"] if r["kind"] == "unanswered"]
    assert {r["operation"] for r in unanswered} <= MONITORING


def test_fields_of_find_error_and_unacknowledged_write(traffic: dict) -> None:
    recs = traffic["records"]
    finds = [r for r in recs if r["operation"] == "find" and r["status"] == "OK"]
    assert finds and finds[0]["response"]["batch_size"] == 2
    assert '"age": {"$gt": "?"}' in finds[0]["request"]["query"]
    more = [r for r in recs if r["operation"] == "getMore"]
    assert sum(r["response"]["batch_size"] for r in more) + 2 == traffic["result"]["found"]
    (bad,) = [r for r in recs if r["status"] == "BadValue"]
    assert bad["error"] is True and bad["response"]["code"] == 2 and bad["response"]["ok"] == 0
    (w0,) = [r for r in recs if r["kind"] == "oneway"]
    assert w0["operation"] == "insert" and w0["response"] is None
    upd = next(r for r in recs if r["operation"] == "update")
    assert upd["response"]["n"] == 3 and upd["response"]["n_modified"] == 3
