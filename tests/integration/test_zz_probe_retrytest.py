import sys, time
sys.path.insert(0, "/work/main/tests/integration")
import pytest
from gwtest import drain, event_props, Publisher
from test_retry import void_routes, retry_config, publish

MAX_PAD = 131009

@pytest.mark.parametrize("slack", [3000, 1000, 600, 400, 200, 50, 0])
def test_probe(gateway, tid, broker, slack):
    gw = gateway(void_routes(tid), retry_config(1, ["200ms"])).start()
    big = {"pad": "x" * (MAX_PAD - slack)}
    publish(broker, gw, b"heavy", event_props(1, type="void.heavy", headers=big, correlation_id="c-heavy"))
    dead = drain(broker, gw.dlq, 1, timeout=6)
    msgs = [ (l.get("msg"), l.get("reason"), l.get("error", "")[:100]) for l in gw.logs()]
    print(f"\nSLACK {slack}: dead={bool(dead)} inbound={broker.count(gw.inbound)} tier={broker.count(tid+'.retry.200ms')} alive={gw.alive()}")
    if dead:
        print("  last-error:", repr(dead[0].headers.get("x-gw-last-error"))[:200])
    from collections import Counter
    print("  log:", Counter(m[0] for m in msgs))
    for m in msgs[:8]: print("   ", m)
