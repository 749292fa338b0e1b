"""A publisher channel whose publishes the broker keeps nacking is replaced (issue 10, point 6).

On a cluster, a channel opened in the instant before a quorum queue's new leader is elected
can have every publish nacked until the old node returns. The gateway replaces such a channel
(GW_CHANHEALTH_STREAK nacks in a row), at most once per GW_CHANHEALTH_MIN_INTERVAL_MS for the
same destination. Here the broker nacks for a reason of the destination's own - a queue that
is always full, with x-overflow reject-publish - so every replacement is followed by more
nacks: the rate limit must hold, every retired channel must be closed (its number freed), and
every event must still end where the retry policy says (the DLQ), none lost.
"""

from datetime import datetime

from gwtest import collect_unique, event_props, publish_many, wait_for

MIN_INTERVAL_S = 5.0  # GW_CHANHEALTH_MIN_INTERVAL_MS (gateway/chanhealth.h)


def log_lines(gw, msg):
    return [o for run in range(1, gw.runs + 1) for o in gw.logs(run) if o.get("msg") == msg]


def ts(line):
    return datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


REPLACING = (
    "the broker nacked every publish on a publisher channel; replacing it with a new one "
    "(what was unconfirmed on it is retried)"
)


def test_a_channel_the_broker_nacks_is_replaced_at_a_bounded_rate_and_nothing_is_lost(gateway, tid, broker):
    full = f"{tid}.full"
    routes = {
        "version": 1,
        "exchanges": [{"name": full, "type": "topic", "durable": True}],
        "queues": [],
        "routes": [{"event": "full.*", "to": [{"exchange": full}]}],
    }
    # every publish is nacked by the broker (max length 0, reject-publish), never returned
    broker.declare_queue(f"{full}.q", arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    config = {
        "retry": {"max_attempts": 3, "backoff": ["3s"]},
        # keep publishing through the failures: the breaker would defer events without a publish
        "circuit_breaker": {"failure_threshold": 1000},
    }
    gw = gateway(routes, config)
    gw.start()
    broker.admin(lambda ch: ch.queue_bind(f"{full}.q", full, "#"))

    n = 200  # 4 publishes each: under the breaker's threshold
    ids = {f"{tid}-{i}" for i in range(n)}
    publish_many(
        broker, gw.inbound, n, lambda i: (b'{"n": %d}' % i, event_props(i, type="full.one", message_id=f"{tid}-{i}"))
    )
    seen, total = collect_unique(broker, gw.dlq, n, key=lambda m: m.props.message_id, timeout=90)
    assert seen == ids, f"lost: {sorted(ids - seen)[:10]}"
    print(f"dead-lettered {n} events, {total - n} duplicates")
    assert gw.alive(), gw.log_tail()

    repl = log_lines(gw, REPLACING)
    assert repl, "no channel was replaced although the broker nacked every publish:\n" + gw.log_tail()
    # at most one replacement per interval for the one destination (times from the log itself)
    dest = [r for r in repl if r.get("carries") == full]
    assert dest, repl
    gaps = [ts(b) - ts(a) for a, b in zip(dest, dest[1:])]
    assert all(g >= MIN_INTERVAL_S - 0.01 for g in gaps), f"replaced faster than the limit: {gaps}"
    # every retired channel was closed by the broker's close-ok and its number freed
    wait_for(
        lambda: len(log_lines(gw, "replaced publisher channel closed")) >= len(repl),
        15,
        f"{len(repl)} replaced channels closed",
    )
    closed = {r["channel"] for r in log_lines(gw, "replaced publisher channel closed")}
    assert {r["channel"] for r in repl} <= closed, (repl, closed)
    # the channels in use stay few: a freed number is taken again
    assert max(r["new_channel"] for r in repl) <= 2 + len(repl), repl
    assert gw.stop() == 0, gw.log_tail()
    broker.delete_queue(f"{full}.q")
