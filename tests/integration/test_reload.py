"""SIGHUP reloads the routing table (SPEC section 8): a new table's topology is declared before
it routes anything, events of a new route reach its new queue while the old routes keep
working; an invalid table, or one whose topology the broker refuses, is refused with an error
line and the table in use keeps serving; SIGTERM afterwards still exits 0. A replaced table
is freed once the events routed with it are settled, even while traffic never pauses.
"""

import signal

from gwtest import drain, drain_exact, event_props, publish_many, publish_one, simple_routes, wait_for


def publish(broker, gw, body, props):
    publish_one(broker, gw.inbound, body, props)


def lines(gw, prefix):
    return [o for o in gw.logs() if str(o.get("msg", "")).startswith(prefix)]


def hup_and_wait(gw, prefix, before, timeout=10):
    """Sends SIGHUP and waits for one more log line starting with prefix than `before`."""
    gw.send_signal(signal.SIGHUP)
    return wait_for(lambda: len(lines(gw, prefix)) > before and lines(gw, prefix), timeout, f"a {prefix!r} log line")


def with_invoices(tid, routes):
    """routes plus exchange <tid>.invoices (direct) -> queue <tid>.invoices.q, route invoice.* ."""
    r = {k: list(v) if isinstance(v, list) else v for k, v in routes.items()}
    r["exchanges"] = r["exchanges"] + [{"name": f"{tid}.invoices", "type": "direct", "durable": True}]
    r["queues"] = r["queues"] + [
        {
            "name": f"{tid}.invoices.q",
            "durable": True,
            "type": "classic",
            "bindings": [{"exchange": f"{tid}.invoices", "routing_key": "invoice.paid"}],
        }
    ]
    r["routes"] = r["routes"] + [{"event": "invoice.*", "to": [{"exchange": f"{tid}.invoices"}]}]
    return r


def test_sighup_adds_a_route_refuses_an_invalid_table_and_sigterm_exits_0(gateway, tid, broker):
    gw = gateway(simple_routes(tid)).start()
    orders_q, invoices_q = f"{tid}.orders.q", f"{tid}.invoices.q"

    # before: invoice.* has no route
    publish(broker, gw, b"early", event_props(1, type="invoice.paid"))
    m = drain_exact(broker, gw.dlq, 1, timeout=10)[0]
    assert m.headers["x-gw-dead-letter-reason"] == "no_route"
    assert broker.queue_info(invoices_q) is None

    # a table with a new exchange, queue and route
    gw.routes = with_invoices(tid, simple_routes(tid))
    gw.write_files()
    hup_and_wait(gw, "routing table reloaded", 0)
    assert broker.exchange_exists(f"{tid}.invoices"), "the new exchange was not declared"
    assert broker.queue_info(invoices_q) is not None, "the new queue was not declared"
    publish(broker, gw, b"new route", event_props(2, type="invoice.paid"))
    publish(broker, gw, b"old route", event_props(3, type="order.created"))
    got = drain_exact(broker, invoices_q, 1, timeout=10)[0]
    assert got.seq == 2 and got.body == b"new route"
    assert got.exchange == f"{tid}.invoices" and got.routing_key == "invoice.paid"
    old = drain_exact(broker, orders_q, 1, timeout=10)[0]
    assert old.seq == 3 and old.exchange == f"{tid}.orders"
    assert broker.count(gw.dlq) == 0

    # an invalid table: refused with an error line naming the file; the table in use serves on
    routes_path = gw.dir / gw.config["routes_file"]
    routes_path.write_text("version: 1\nexchanges: []\nqueues: []\nroutes:\n  - event: order.*\n    bogus_key: 1\n")
    refused = hup_and_wait(gw, "reload refused", 0)
    assert all(r["level"] == "error" for r in refused), refused
    assert any("routes.yaml:" in str(r.get("error", "")) for r in refused), refused
    assert len(lines(gw, "routing table reloaded")) == 1
    publish(broker, gw, b"still new", event_props(4, type="invoice.paid"))
    publish(broker, gw, b"still old", event_props(5, type="order.updated"))
    assert drain_exact(broker, invoices_q, 1, timeout=10)[0].seq == 4
    assert drain_exact(broker, orders_q, 1, timeout=10)[0].seq == 5
    assert broker.count(gw.dlq) == 0
    assert gw.alive()

    # SIGTERM: clean exit
    assert gw.stop(signal.SIGTERM, timeout=15) == 0
    assert lines(gw, "stopped cleanly"), gw.log_tail()


def test_sighup_with_a_table_the_broker_refuses_keeps_the_old_table(gateway, tid, broker):
    """Two tables whose topology cannot be put in place: one redeclares the existing
    destination exchange with another type (the broker answers 406 PRECONDITION_FAILED), one
    routes to an exchange that neither the table declares nor the broker has. Both reloads
    are refused; the gateway keeps routing with the old table on a working connection."""
    gw = gateway(simple_routes(tid)).start()
    orders_q = f"{tid}.orders.q"
    publish(broker, gw, b"before", event_props(1, type="order.a"))
    assert drain_exact(broker, orders_q, 1, timeout=10)[0].seq == 1

    clash = with_invoices(tid, simple_routes(tid))
    clash["exchanges"][0] = dict(clash["exchanges"][0], type="fanout")  # <tid>.orders is topic
    missing = with_invoices(tid, simple_routes(tid))
    missing["routes"].append({"event": "ghost.*", "to": [{"exchange": f"{tid}.ghost"}]})
    for n, table in enumerate((clash, missing), start=1):
        gw.routes = table
        gw.write_files()
        refused = hup_and_wait(gw, "reload refused", n - 1)
        assert refused[-1]["level"] == "error", refused
        assert not lines(gw, "routing table reloaded"), f"table {n} was taken"
        # the old table serves on: the old route works, the refused table's route does not
        publish(broker, gw, b"after", event_props(10 * n, type="order.b"))
        assert drain_exact(broker, orders_q, 1, timeout=10)[0].seq == 10 * n
        publish(broker, gw, b"no route yet", event_props(10 * n + 1, type="invoice.paid"))
        m = drain(broker, gw.dlq, 1, timeout=10)
        assert m and m[0].seq == 10 * n + 1 and m[0].headers["x-gw-dead-letter-reason"] == "no_route", m
    assert "exchange" in str(lines(gw, "reload refused")[0].get("error", "")), lines(gw, "reload refused")
    assert f"{tid}.ghost" in str(lines(gw, "reload refused")[-1].get("error", "")), lines(gw, "reload refused")
    assert not lines(gw, "connection lost"), lines(gw, "connection lost")
    assert gw.alive()
    assert gw.stop(signal.SIGTERM, timeout=15) == 0


def fan_routes(tid, b_key=None, with_b=True):
    """<tid>.a (topic) -> <tid>.qa (#); <tid>.b (direct) -> <tid>.qb bound to "fixed" only;
    route ev.* -> a, and b (routing key b_key, default the event type: unroutable)."""
    to = [{"exchange": f"{tid}.a"}]
    if with_b:
        to.append({"exchange": f"{tid}.b", **({"routing_key": b_key} if b_key else {})})
    return {
        "version": 1,
        "exchanges": [
            {"name": f"{tid}.a", "type": "topic", "durable": True},
            {"name": f"{tid}.b", "type": "direct", "durable": True},
        ],
        "queues": [
            {"name": f"{tid}.qa", "durable": True, "type": "classic",
             "bindings": [{"exchange": f"{tid}.a", "routing_key": "#"}]},
            {"name": f"{tid}.qb", "durable": True, "type": "classic",
             "bindings": [{"exchange": f"{tid}.b", "routing_key": "fixed"}]},
        ],
        "routes": [{"event": "ev.*", "to": to}],
    }


def _retries_pending_then_reload(gateway, tid, broker, new_routes):
    gw = gateway(fan_routes(tid), {
        "retry": {"max_attempts": 3, "backoff": ["2s"]},
        "circuit_breaker": {"failure_threshold": 1000},
    }).start()
    n = 20
    for i in range(n):
        publish(broker, gw, b"e%d" % i, event_props(i, type="ev.x"))
    drain_exact(broker, f"{tid}.qa", n, timeout=10, settle=0.2)  # the first copies
    wait_for(lambda: len(lines(gw, "retry scheduled")) >= n, 10, f"{n} retries scheduled for {tid}.b")
    gw.routes = new_routes
    gw.write_files()
    hup_and_wait(gw, "routing table reloaded", 0)
    return gw, n


def test_reload_that_fixes_a_routing_key_retries_pending_copies_with_it_only(gateway, tid, broker):
    """The natural fix of a broken destination: give it the right routing key and reload.
    The copies waiting in a retry tier go to that destination with the new key; the
    destination that took the event the first time gets no second copy."""
    gw, n = _retries_pending_then_reload(gateway, tid, broker, fan_routes(tid, b_key="fixed"))
    qb = drain_exact(broker, f"{tid}.qb", n, timeout=15, settle=0.5)
    assert sorted(m.seq for m in qb) == list(range(n))
    assert not drain(broker, f"{tid}.qa", 1, 1.0), "the healthy destination got the event twice"
    assert broker.count(gw.dlq) == 0


def test_reload_that_removes_a_failing_destination_dead_letters_its_pending_retries(gateway, tid, broker):
    """The route no longer has the destination a retry copy waits for: the copy is not sent to
    the route's other destinations (they took the event already), it goes to the DLQ saying why."""
    gw, n = _retries_pending_then_reload(gateway, tid, broker, fan_routes(tid, with_b=False))
    dead = drain_exact(broker, gw.dlq, n, timeout=15, settle=0.5)
    assert sorted(m.seq for m in dead) == list(range(n))
    assert all(m.headers["x-gw-dead-letter-reason"] == "no_route" for m in dead)
    assert all(m.headers["x-gw-original-exchange"] == f"{tid}.b" for m in dead)
    assert "no longer has it" in dead[0].headers["x-gw-last-error"]
    assert not drain(broker, f"{tid}.qa", 1, 1.0), "the healthy destination got the event twice"


def freed_generations(gw):
    return sorted(o.get("generation") for o in lines(gw, "old routing table freed"))


def test_reloads_under_continuous_traffic_free_each_replaced_table(gateway, tid, broker):
    """A backlog keeps the gateway busy: it always has prefetch events in flight while the
    table is replaced three times. Each replaced table is freed as soon as the events routed
    with it are settled (it used to be kept until the gateway was idle, which under steady
    load is never), and every event still arrives exactly once."""
    gw = gateway(simple_routes(tid))
    orders_q, n = f"{tid}.orders.q", 20000
    broker.declare_queue(gw.inbound)  # as the gateway declares it: durable, no arguments
    publish_many(broker, gw.inbound, n, lambda seq: (b"e%d" % seq, event_props(seq, type="order.created")))
    gw.start()
    wait_for(lambda: broker.count(orders_q) > 0, 20, f"events reaching {orders_q}")
    tables = (simple_routes(tid), with_invoices(tid, simple_routes(tid)))
    for k in (1, 2, 3):
        gw.routes = tables[k % 2]
        gw.write_files()
        hup_and_wait(gw, "routing table reloaded", k - 1)
        wait_for(lambda: freed_generations(gw) == list(range(1, k + 1)), 20, f"table {k} freed")
    backlog = broker.count(gw.inbound)
    assert backlog > 0, f"the backlog was gone before the last table was freed; raise n ({n})"
    wait_for(lambda: broker.count(orders_q) == n, 120, f"{n} events in {orders_q}")
    assert broker.count(gw.inbound) == 0 and broker.count(gw.dlq) == 0
    assert not lines(gw, "reload refused"), lines(gw, "reload refused")
    assert gw.stop(signal.SIGTERM, timeout=15) == 0
