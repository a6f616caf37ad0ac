"""`serving.netbackend` against real loopback sockets, on the default asyncio loop and on uvloop.

Each test is a sync function that runs one coroutine on a fresh loop (``asyncio.Runner``, which
is ``asyncio.run`` with a choice of loop: uvicorn runs the sidecar on uvloop). The servers are
asyncio servers on 127.0.0.1 port 0 started inside the coroutine; nothing is mocked.
"""

import asyncio
import contextlib
import datetime
import ipaddress
import random
import select
import socket
import ssl
import struct

import httpcore
import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from serving.netbackend import READ_HIGH_WATER, AsyncioBackend, AsyncioStream

TEST_DEADLINE_S = 5.0  # a hang fails the test instead of the run
SOCKET_READ_MAX = 256 * 1024  # the most one read from the socket delivers (asyncio and uvloop both ~256 KiB)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """``run(coro)``: the coroutine on a fresh loop of the parametrised kind, bounded in time."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(coro):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, TEST_DEADLINE_S))

    return run


class Peer(asyncio.Protocol):
    """The server's side of one accepted connection: its transport and everything it received."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.transport: asyncio.Transport | None = None
        self.received = bytearray()
        self.lost = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.received += data
        if self.echo:
            self.transport.write(data)

    def connection_lost(self, exc):
        self.lost = True


@contextlib.asynccontextmanager
async def listening(factory=Peer, ssl_context=None):
    """An asyncio server on a free loopback port; yields ``(port, peers)`` (accepted connections)."""
    peers = []

    def accept():
        peers.append(factory())
        return peers[-1]

    server = await asyncio.get_running_loop().create_server(accept, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        server.close()
        for peer in peers:
            if peer.transport is not None:
                peer.transport.close()


async def until(condition, what: str, timeout: float = 2.0) -> None:
    """Let the loop run until ``condition()`` holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.001)


async def accepted(peers, n: int = 1) -> Peer:
    await until(lambda: len(peers) >= n and peers[n - 1].transport is not None, f"connection {n} accepted")
    return peers[n - 1]


async def read_to_end(stream, max_bytes: int = 65536) -> bytes:
    out = bytearray()
    while chunk := await stream.read(max_bytes, timeout=2):
        out += chunk
    return bytes(out)


async def connect(port: int) -> AsyncioStream:
    stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2)
    assert isinstance(stream, AsyncioStream)
    return stream


# -- connect, round trip, end of stream -------------------------------------------------------


def test_round_trip_then_empty_bytes_at_end_of_stream(run):
    async def main():
        async with listening(lambda: Peer(echo=True)) as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            await stream.write(b"ping ", timeout=1)
            await stream.write(b"pong", timeout=1)
            got = b""
            while len(got) < 9:
                got += await stream.read(100, timeout=2)
            assert got == b"ping pong" and bytes(peer.received) == b"ping pong"

            peer.transport.close()
            assert await stream.read(100, timeout=2) == b""
            assert await stream.read(100, timeout=2) == b""  # the end stays the end
            await stream.aclose()

    run(main())


def test_socket_options_are_applied(run):
    async def main():
        async with listening() as (port, _):
            options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=2, socket_options=options)
            sock = stream.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            await stream.aclose()

    run(main())


def test_refused_port_raises_connect_error(run):
    async def main():
        with socket.socket() as bound:  # bound, never listening: the port is ours and refuses
            bound.bind(("127.0.0.1", 0))
            with pytest.raises(httpcore.ConnectError):
                await AsyncioBackend().connect_tcp("127.0.0.1", bound.getsockname()[1], timeout=2)

    run(main())


def test_connect_that_gets_no_answer_raises_connect_timeout(run):
    """A listener whose accept queue is full drops further SYNs, so the connect never completes.

    (A non-routable address such as 10.255.255.1 is no use here: this sandbox accepts it.)
    """

    async def main():
        loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as stack:
            listener = stack.enter_context(socket.socket())
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            port = listener.getsockname()[1]
            for _ in range(3):  # fill the accept queue (nobody accepts)
                filler = stack.enter_context(socket.socket())
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            started = loop.time()
            with pytest.raises(httpcore.ConnectTimeout):
                await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=0.2)
            assert loop.time() - started < 1.5

    run(main())


# -- reads: timeouts, errors, sizes -----------------------------------------------------------


def test_read_timeout_leaves_the_stream_usable(run):
    async def main():
        async with listening() as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(100, timeout=0.05)
            peer.transport.write(b"late")  # arrives after the timeout: not lost
            assert await stream.read(100, timeout=2) == b"late"
            await stream.write(b"still writable", timeout=1)
            await until(lambda: bytes(peer.received) == b"still writable", "the write after a read timeout")
            await stream.aclose()

    run(main())


def test_connection_reset_raises_read_error(run):
    async def main():
        async with listening() as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            linger_zero = struct.pack("ii", 1, 0)  # close with RST instead of FIN
            peer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
            peer.transport.abort()
            with pytest.raises(httpcore.ReadError):
                await stream.read(100, timeout=2)
            await stream.aclose()

    run(main())


def test_read_returns_at_most_max_bytes_and_loses_or_reorders_nothing(run):
    rng = random.Random(7)
    payload = rng.randbytes(1024 * 1024)

    async def main():
        async with listening() as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            at = 0
            while at < len(payload):  # the server writes in random pieces, some in separate loop turns
                size = rng.choice([1, 13, 1500, 8192, 65536, 200_000])
                peer.transport.write(payload[at : at + size])
                at += size
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
            peer.transport.close()

            got, truncated = bytearray(), 0
            while True:
                max_bytes = rng.choice([1, 7, 1000, 4096, 65536, 300_000])
                chunk = await stream.read(max_bytes, timeout=2)
                if not chunk:
                    break
                assert len(chunk) <= max_bytes
                truncated += len(chunk) == max_bytes
                got += chunk
            assert truncated > 0  # the split path ran
            assert bytes(got) == payload
            await stream.aclose()

    run(main())


def test_reading_pauses_past_the_high_water_mark_and_resumes(run):
    payload = random.Random(11).randbytes(8 * 1024 * 1024)

    async def main():
        async with listening() as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            peer.transport.write(payload)  # far more than the socket buffers hold
            peer.transport.close()

            protocol = stream.protocol
            await until(lambda: protocol.paused_reading, "reading to pause")
            held = protocol.buffered
            assert READ_HIGH_WATER < held <= READ_HIGH_WATER + SOCKET_READ_MAX
            # the socket has data waiting, yet loop turns pull nothing more into the buffer
            assert _socket_has_data(stream)
            for _ in range(20):
                await asyncio.sleep(0)
            assert protocol.buffered == held and protocol.paused_reading

            got = bytearray()
            while protocol.buffered > READ_HIGH_WATER // 4:  # drain below the low-water mark: resumes
                got += await stream.read(65536, timeout=2)
            assert not protocol.paused_reading
            got += await read_to_end(stream)
            assert len(got) == len(payload) and bytes(got) == payload
            await stream.aclose()

    run(main())


def _socket_has_data(stream) -> bool:
    poller = select.poll()
    poller.register(stream.get_extra_info("socket").fileno(), select.POLLIN)
    return bool(poller.poll(0))


# -- extra info, writes after the peer left ----------------------------------------------------


def test_extra_info_addresses_and_is_readable_once_the_server_closed(run):
    async def main():
        async with listening() as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
            assert stream.get_extra_info("client_addr") == peer.transport.get_extra_info("peername")
            assert stream.get_extra_info("ssl_object") is None
            assert stream.get_extra_info("no such key") is None

            await stream.write(b"hello", timeout=1)  # a round trip, then idle
            peer.transport.write(b"hi")
            assert await stream.read(10, timeout=2) == b"hi"
            for _ in range(5):
                await asyncio.sleep(0)
            assert stream.get_extra_info("is_readable") is False

            peer.transport.close()
            await until(lambda: stream.get_extra_info("is_readable"), "is_readable after the server closed")
            assert await stream.read(10, timeout=2) == b""
            await stream.aclose()

    run(main())


def test_write_after_the_peer_closed_raises_write_error(run):
    async def main():
        async with listening() as (port, peers):
            stream = await connect(port)
            peer = await accepted(peers)
            peer.transport.close()
            await until(lambda: peer.lost, "the server to close")
            for _ in range(50):
                try:
                    await stream.write(b"x" * 1000, timeout=1)
                except httpcore.WriteError:
                    break
                await asyncio.sleep(0.001)
            else:
                pytest.fail("50 writes to a closed peer did not raise WriteError")
            await stream.aclose()

    run(main())


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate for localhost/127.0.0.1: (server context, client context trusting it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(sans, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return server, ssl.create_default_context(cafile=str(cert_path))


async def connect_tls(port: int, context: ssl.SSLContext):
    stream = await connect(port)
    return await stream.start_tls(context, server_hostname="localhost", timeout=2)


def test_tls_round_trip_with_a_trusted_certificate(run, tls):
    server_context, client_context = tls

    async def main():
        async with listening(lambda: Peer(echo=True), ssl_context=server_context) as (port, peers):
            stream = await connect_tls(port, client_context)
            assert stream.get_extra_info("ssl_object") is not None
            peer = await accepted(peers)
            await stream.write(b"secret", timeout=1)
            got = b""
            while len(got) < 6:
                got += await stream.read(100, timeout=2)
            assert got == b"secret" and bytes(peer.received) == b"secret"
            for _ in range(5):
                await asyncio.sleep(0)
            assert stream.get_extra_info("is_readable") is False

            peer.transport.close()
            await until(lambda: stream.get_extra_info("is_readable"), "is_readable after the TLS server closed")
            assert await stream.read(100, timeout=2) == b""
            await stream.aclose()

    run(main())


def test_tls_with_an_untrusted_certificate_raises_connect_error(run, tls):
    server_context, _ = tls

    async def main():
        async with listening(ssl_context=server_context) as (port, _):
            with pytest.raises(httpcore.ConnectError):
                await connect_tls(port, ssl.create_default_context())  # the system's CAs: not ours

    run(main())


def test_tls_reading_pauses_and_resumes(run, tls):
    """The regression: back-pressure paused the raw socket under the TLS layer but resumed the TLS
    transport, so a TLS response larger than READ_HIGH_WATER hung once the buffer drained."""
    server_context, client_context = tls
    payload = random.Random(13).randbytes(4 * 1024 * 1024)

    async def main():
        async with listening(ssl_context=server_context) as (port, peers):
            stream = await connect_tls(port, client_context)
            peer = await accepted(peers)
            peer.transport.write(payload)
            peer.transport.close()
            await until(lambda: stream.protocol.paused_reading, "reading to pause")
            assert stream.protocol.buffered < 1024 * 1024  # bounded, not the 4 MB sent
            got = await read_to_end(stream)
            assert len(got) == len(payload) and got == payload
            await stream.aclose()

    run(main())


# -- through httpcore's pool --------------------------------------------------------------------


class Responder(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: answers each GET with "<connection number> <path>"
    as a keep-alive response; with ``close_when_idle`` it then closes the connection, as a server
    whose keep-alive timeout has passed does."""

    def __init__(self, counts: dict, close_when_idle: bool) -> None:
        self.counts, self.close_when_idle = counts, close_when_idle
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport
        self.counts["opened"] += 1
        self.number = self.counts["opened"]

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            body = b"%d %s" % (self.number, head.split()[1])
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            if self.close_when_idle:
                self.transport.close()

    def connection_lost(self, exc):
        self.counts["closed"] += 1


def test_pool_keeps_one_connection_alive_across_requests(run):
    async def main():
        counts = {"opened": 0, "closed": 0}
        async with listening(lambda: Responder(counts, close_when_idle=False)) as (port, _):
            async with httpcore.AsyncConnectionPool(network_backend=AsyncioBackend()) as pool:
                for i in range(5):
                    response = await pool.request("GET", f"http://127.0.0.1:{port}/r{i}")
                    assert (response.status, response.content) == (200, f"1 /r{i}".encode())
                assert counts["opened"] == 1 and len(pool.connections) == 1

    run(main())


def test_pool_reconnects_when_the_server_closed_an_idle_connection(run):
    async def main():
        counts = {"opened": 0, "closed": 0}
        async with listening(lambda: Responder(counts, close_when_idle=True)) as (port, _):
            async with httpcore.AsyncConnectionPool(network_backend=AsyncioBackend()) as pool:
                for i in range(1, 4):
                    response = await pool.request("GET", f"http://127.0.0.1:{port}/r{i}")
                    assert (response.status, response.content) == (200, f"{i} /r{i}".encode())
                    await until(lambda: counts["closed"] == i, "the server to close the idle connection")
                    # the pool sees the closed keep-alive connection through is_readable
                    await until(lambda: all(c.has_expired() for c in pool.connections), "the pool to notice")
                assert counts["opened"] == 3

    run(main())
