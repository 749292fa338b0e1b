"""The gateway over TLS (amqps://, SPEC broker.tls) against a real TLS listener.

The module starts a node of its own (scripts/broker with AMQP_GW_BROKER_DIR and
AMQP_GW_BROKER_TLS_DIR, in a private folder under /tmp that the node's user can reach) with a
plain and a TLS listener, and always stops it at the end. Certificates are made with the
openssl CLI: a CA, a server certificate for the DNS name `localhost` (rabbitmq-c 0.11 checks DNS
names only, never IP addresses), and a second, unrelated CA.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import gwtest

pytestmark = pytest.mark.slow


# --- certificates -----------------------------------------------------------------------------


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")


def make_ca(directory, name):
    """A self-signed CA: <directory>/<name>.pem and <name>.key."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN=amqp-gw test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f"{name}.key", "-out", f"{name}.pem",
        cwd=directory,
    )  # fmt: skip
    return Path(directory) / f"{name}.pem"


def make_server_cert(directory, ca, name="server", dns="localhost"):
    """<directory>/<name>.pem and <name>.key for DNS name dns, signed by CA <ca>."""
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={dns}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
        cwd=directory,
    )  # fmt: skip
    ext = Path(directory) / f"{name}.ext"
    ext.write_text(
        f"subjectAltName=DNS:{dns}\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext.name, "-out", f"{name}.pem",
        cwd=directory,
    )  # fmt: skip
    return Path(directory) / f"{name}.pem", Path(directory) / f"{name}.key"


# --- the TLS node -----------------------------------------------------------------------------


class TlsNode:
    """A private node with a TLS listener: `plain` (a gwtest.Broker on its plain port, for pika)
    and `tls_url` (amqps://...@localhost:PORT)."""

    def __init__(self, root, script):
        self.root = Path(root)
        self.script = str(script)
        self.certs = self.root / "certs"
        self.certs.mkdir()
        make_ca(self.certs, "ca")
        make_server_cert(self.certs, "ca")
        make_ca(self.certs, "other-ca")
        self.ca = self.certs / "ca.pem"
        self.other_ca = self.certs / "other-ca.pem"
        self.env = dict(
            os.environ,
            AMQP_GW_BROKER_DIR=str(self.root / "tlsnode"),
            AMQP_GW_BROKER_TLS_DIR=str(self.certs),
        )
        self.env.pop("AMQP_GW_BROKER_NAME", None)
        self.plain = None
        self.tls_url = None

    def run(self, *args, timeout=60, check=True):
        p = subprocess.run([self.script, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"scripts/broker {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
        return p.stdout.strip()

    def start(self):
        self.run("start", timeout=150)
        self.plain = gwtest.Broker(self.run("url"), self.script)
        # ctl must reach this node, not the session's: bind the environment into it.
        self.plain.ctl = self._ctl
        self.tls_url = self.run("tls-url")

    def _ctl(self, *args, timeout=60, check=True):
        return self.run("ctl", *map(str, args), timeout=timeout, check=check)

    def stop(self):
        if self.plain is not None:
            self.plain.close()
        self.run("stop", timeout=150, check=False)


class TlsGateway(gwtest.Gateway):
    """A gateway whose AMQP_GW_URL is the TLS URL; the harness's broker object (used for
    readiness and draining) talks to the same node over plain TCP."""

    def __init__(self, node, url, *args, **kw):
        self.url = url
        super().__init__(node.plain, *args, **kw)

    def env(self):
        env = super().env()
        env["AMQP_GW_URL"] = self.url
        return env


@pytest.fixture(scope="module")
def tls_node():
    # The repo's own script, not $AMQP_GW_BROKER: that one may be a wrapper pinned to the
    # session's node, and this node must live (and be stopped) in a folder of its own.
    script = gwtest.REPO / "scripts" / "broker"
    if shutil.which("openssl") is None:
        pytest.fail("the openssl CLI is needed to make the test certificates")
    # Not under pytest's tmp_path: as root the node runs as `rabbitmq`, which cannot enter
    # /tmp/pytest-of-root (mode 700).
    root = Path(tempfile.mkdtemp(prefix="amqp-gw-tls-"))
    root.chmod(0o755)
    node = TlsNode(root, script)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tls_gateway(tls_node, gw_binary, tmp_path, tid):
    """Factory: tls_gateway(config=None, url=None) -> TlsGateway (not started) for tls_node,
    AMQP_GW_URL = url or the node's TLS URL. Its names are deleted at the end."""
    made = []

    def make(config=None, url=None, name="gw"):
        gw = TlsGateway(
            tls_node, url or tls_node.tls_url, gw_binary, tmp_path / name, tid, gwtest.simple_routes(tid), config
        )
        made.append(gw)
        return gw

    yield make
    gwtest.close_gateways(made)
    try:
        for gw in made:
            queues, exchanges = gw.known_names()
            tls_node.plain.cleanup_names(queues, exchanges)
        tls_node.plain.cleanup([tid])
    except Exception as e:  # cleanup must not hide the test's own result
        print(f"cleanup of {tid}.* failed: {e!r}")


def check_live(gw, timeout=30):
    """`amqp-gw check --live -c config.yaml` with the gateway's environment."""
    return subprocess.run(
        [gw.binary, "check", "--live", "-c", str(gw.config_path)],
        env=gw.env(),
        cwd=str(gw.dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def connect_failures(gw):
    return [r for r in gw.logs() if r.get("msg") == "cannot connect to broker"]


def assert_cannot_connect(gw, words):
    """The gateway keeps retrying: a "cannot connect to broker" line whose error holds every
    one of words, and no consumer on its inbound queue."""
    gw.spawn()
    rec = gwtest.wait_for(lambda: connect_failures(gw), 15, "a 'cannot connect to broker' log line")[0]
    err = rec.get("error", "")
    assert all(w in err.lower() for w in words), f"error does not mention {words}: {rec!r}"
    assert gw.alive(), f"gateway exited instead of retrying:\n{gw.log_tail()}"
    assert gw.broker.consumers(gw.inbound) == 0
    assert gw.stop() == 0, gw.log_tail()
    return err


def assert_check_live_fails(gw, words):
    p = check_live(gw)
    # 3: the broker could not be reached (1 is drift)
    assert p.returncode == 3, f"check --live exited {p.returncode}: {p.stdout!r} {p.stderr!r}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {p.stderr!r}"
    assert lines[0].startswith("amqp-gw: cannot connect to the broker"), lines[0]
    assert all(w in lines[0].lower() for w in words), lines[0]
    assert "guest:guest" not in lines[0], f"password leaked: {lines[0]}"


def test_gateway_forwards_over_tls_when_the_ca_file_signs_the_broker_certificate(tls_node, tls_gateway, tid):
    gw = tls_gateway({"broker": {"tls": {"ca_file": str(tls_node.ca)}}}).start()
    assert not connect_failures(gw), gw.log_tail()
    gwtest.publish_one(tls_node.plain, gw.inbound, b'{"n": 1}', gwtest.event_props(seq=1, type="order.created"))
    msgs = gwtest.drain_exact(tls_node.plain, f"{tid}.orders.q", 1)
    assert msgs[0].body == b'{"n": 1}'
    assert msgs[0].routing_key == "order.created"
    # The broker sees the gateway's two connections (consumer, publisher) on its TLS port,
    # speaking TLS 1.2 or 1.3.
    conns = tls_node.plain.ctl("list_connections", "-q", "--no-table-headers", "name", "ssl", "ssl_protocol")
    port = tls_node.tls_url.rsplit(":", 1)[1].split("/")[0]
    tls_conns = [ln.split("\t") for ln in conns.splitlines() if f"-> 127.0.0.1:{port}\t" in ln]
    assert len(tls_conns) == 2, conns
    assert all(c[1] == "true" and c[2] in ("tlsv1.2", "tlsv1.3") for c in tls_conns), conns
    assert gw.stop() == 0, gw.log_tail()

    p = check_live(gw)
    assert p.returncode == 0, f"check --live exited {p.returncode}: {p.stdout!r} {p.stderr!r}"
    assert "in sync with amqps://" in p.stdout, p.stdout


def test_gateway_cannot_connect_over_tls_when_the_ca_file_is_another_ca(tls_node, tls_gateway):
    gw = tls_gateway({"broker": {"tls": {"ca_file": str(tls_node.other_ca)}}})
    words = ("ssl", "peer cert verification failed")
    assert_cannot_connect(gw, words)
    assert_check_live_fails(gw, words)


def test_gateway_without_a_ca_file_uses_the_system_trust_store_which_rejects_a_private_ca(
    tls_node, tls_gateway
):
    gw = tls_gateway({"broker": {"tls": {"verify_peer": True}}})
    words = ("ssl", "peer cert verification failed")
    assert_cannot_connect(gw, words)
    assert_check_live_fails(gw, words)


def test_gateway_cannot_connect_over_tls_to_an_ip_address_when_the_certificate_names_only_localhost(
    tls_node, tls_gateway
):
    url = tls_node.tls_url.replace("@localhost:", "@127.0.0.1:")
    assert url != tls_node.tls_url
    gw = tls_gateway({"broker": {"tls": {"ca_file": str(tls_node.ca), "verify_hostname": True}}}, url=url)
    words = ("ssl", "hostname verification failed")
    assert_cannot_connect(gw, words)
    assert_check_live_fails(gw, words)

    # The same URL with the hostname check off connects: the name was the only problem.
    ok = tls_gateway({"broker": {"tls": {"ca_file": str(tls_node.ca), "verify_hostname": False}}}, url=url, name="gw2")
    ok.start()
    assert not connect_failures(ok), ok.log_tail()
    assert ok.stop() == 0, ok.log_tail()
