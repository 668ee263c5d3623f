"""A private Pushpin (Debian's `pushpin`) in front of an origin, for tests and bench/live_feed.py:
its own config, run directory and ports, so it never meets the system's Pushpin service."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PUSHPIN = shutil.which("pushpin") or "/usr/bin/pushpin"
# The GRIP signing key the test and bench Pushpins use (their origin is told the same one).
SIG_KEY = "intake-test-grip-key-of-32-bytes-or-more"


def available() -> bool:
    return Path(PUSHPIN).exists()


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


CONFIG = """\
[global]
include={libdir}/internal.conf
rundir=%(rundir)s
ipc_prefix=intake-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:%(http)d
logdir=%(rundir)s
log_level=2
client_buffer_size=8192
client_maxconn=%(maxconn)d

[proxy]
# Pushpin reaches the origin through zurl; Debian's internal.conf points at a system zurl.
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out
routesfile=%(routes)s
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
x_forwarded_for=
x_forwarded_for_trusted=
orig_headers_need_mark=
accept_pushpin_route=false
log_from=false
log_user_agent=false
sig_iss=pushpin
sig_key=%(sig_key)s
upstream_key=
updates_check=off

[handler]
push_in_spec=tcp://127.0.0.1:%(push_in)d
push_in_sub_specs=tcp://127.0.0.1:%(push_sub)d
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=%(control)d
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=tcp://127.0.0.1:%(command)d
message_rate=%(message_rate)d
message_hwm=%(message_hwm)d
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"""


class Pushpin:
    """`pushpin` routing every path to `origin` ("host:port"). `url` is where clients connect,
    `control_url` where the origin publishes. Stop it with stop()."""

    def __init__(
        self,
        origin: str,
        *,
        directory: Path | None = None,
        max_connections: int = 50_000,
        message_rate: int = 2500,
    ) -> None:
        self.dir = Path(directory or tempfile.mkdtemp(prefix="intake-pushpin-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        http, push_in, push_sub, control, command = _free_ports(5)
        (self.dir / "routes").write_text(f"* {origin}\n")
        config = CONFIG % {
            "rundir": self.dir,
            "http": http,
            "maxconn": max_connections,
            "routes": self.dir / "routes",
            "sig_key": SIG_KEY,
            "push_in": push_in,
            "push_sub": push_sub,
            "control": control,
            "command": command,
            # Messages a second Pushpin writes to clients, and how many it queues: its
            # defaults (2,500/s) would pace a big fan-out rather than measure it.
            "message_rate": message_rate,
            "message_hwm": max(25_000, message_rate * 10),
        }
        self.config = self.dir / "pushpin.conf"
        self.config.write_text(config)
        self.port = http
        self.url = f"http://127.0.0.1:{http}"
        self.control_url = f"http://127.0.0.1:{control}"
        self.log_path = self.dir / "pushpin.out"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [PUSHPIN, "--config", str(self.config), "--merge-output"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(30.0)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"pushpin exited:\n{self.output()}")
            if all(_listening(port) for port in (self.port, int(self.control_url.rsplit(":")[-1]))):
                return
            time.sleep(0.1)
        raise RuntimeError(f"pushpin did not come up in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        texts = [self.log_path.read_text(errors="replace")]
        for log in sorted(self.dir.glob("*.log")):
            texts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(texts)

    def stop(self) -> None:
        import os
        import signal

        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
