#!/usr/bin/env python3
"""Interop test of the OCPP security profiles: charge points played by the
PyPI `ocpp` library (2.1.0; its v16 module has the 1.6 security extension)
against `voltyard serve` with a wss:// listener, driven through the CLI.

Covers: profile 1 (HTTP Basic) with a password the server generates and
pushes (1.6 ChangeConfiguration AuthorizationKey, 2.0.1 SetVariables
SecurityCtrlr.BasicAuthPassword), SignCertificate / CertificateSigned,
SecurityEventNotification, InstallCertificate / GetInstalledCertificateIds /
DeleteCertificate, ExtendedTriggerMessage, profile 2 (TLS + password) and
profile 3 (TLS with the client certificate the built-in CA just issued),
and the refusals: wrong password, plain ws:// below the profile, TLS
without the client certificate.

Usage:
    python3 tests/interop/security_interop.py --bin target/debug/voltyard [--verbose]

Prints `N passed, 0 failed` and exits 0 on success, else the failure, the
server log's tail and `N passed, 1 failed`, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import enums as enums16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201 import enums as enums201

TIMEOUT = 20.0


class CheckFailed(Exception):
    pass


class Checks:
    def __init__(self, verbose: bool):
        self.passed = 0
        self.verbose = verbose

    def check(self, name: str, condition: bool, detail: str = "") -> None:
        if not condition:
            self.fail(name, detail or "condition is false")
        self.passed += 1
        if self.verbose:
            print(f"ok {self.passed:3} {name}", flush=True)

    def equal(self, name: str, actual: Any, expected: Any) -> None:
        self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")

    def fail(self, name: str, detail: str) -> NoReturn:
        raise CheckFailed(f"{name}: {detail}")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- certificates


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_server_pki(d: Path) -> Path:
    """A CA and a server certificate for localhost; returns the CA file."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interop server CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(key_pem(key))
    (d / "server-ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return d / "server-ca.pem"


def csr_for(cp_id: str, key) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def leaf_cn(chain_pem: str) -> str:
    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    return leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


# ---------------------------------------------------------------- server and CLI


class Server:
    def __init__(self, binary: Path, work: Path):
        self.binary, self.work = binary, work
        self.data = work / "data"
        self.port, self.tls_port = free_port(), free_port()
        self.log = work / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cfg = self.work / "voltyard.toml"
        cfg.write_text(
            f'listen = "127.0.0.1:{self.port}"\ntls_listen = "127.0.0.1:{self.tls_port}"\n'
            f'tls_cert = "{self.work / "server.pem"}"\ntls_key = "{self.work / "server.key"}"\n'
            f'data_dir = "{self.data}"\n'
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--config", str(cfg)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.tls_port), 0.5):
                if (self.data / "control.sock").exists():
                    return
            time.sleep(0.1)
        raise CheckFailed("server not ready within 15 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])
        return "(no log)"


async def cli(server: Server, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(server.binary), "--data-dir", str(server.data), *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    return proc.returncode, out.decode(), err.decode()


async def cli_ok(checks: Checks, server: Server, *args: str) -> str:
    code, out, err = await cli(server, *args)
    checks.equal(f"`voltyard {' '.join(args)}` exit code ({err.strip()})", code, 0)
    return out


# ---------------------------------------------------------------- charge points


class Py16(ChargePoint16):
    """A 1.6 charge point with the security extension."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: dict[str, Any] = {}
        self.signed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.installed: list[dict] = []

    @on(enums16.Action.change_configuration)
    def change_configuration(self, key, value, **_):
        self.seen[key] = value
        return result16.ChangeConfiguration(status="Accepted")

    @on(enums16.Action.certificate_signed)
    def certificate_signed(self, certificate_chain, **_):
        if not self.signed.done():
            self.signed.set_result(certificate_chain)
        return result16.CertificateSigned(status="Accepted")

    @on(enums16.Action.install_certificate)
    def install_certificate(self, certificate_type, certificate, **_):
        self.seen["install"] = certificate_type
        return result16.InstallCertificate(status="Accepted")

    @on(enums16.Action.get_installed_certificate_ids)
    def get_installed(self, certificate_type, **_):
        if certificate_type != "CentralSystemRootCertificate":
            return result16.GetInstalledCertificateIds(status="NotFound")
        return result16.GetInstalledCertificateIds(
            status="Accepted",
            certificate_hash_data=[
                {"hashAlgorithm": "SHA256", "issuerNameHash": "ab", "issuerKeyHash": "cd", "serialNumber": "1f"}
            ],
        )

    @on(enums16.Action.delete_certificate)
    def delete_certificate(self, certificate_hash_data, **_):
        self.seen["delete"] = certificate_hash_data["serial_number"]
        return result16.DeleteCertificate(status="Accepted")

    @on(enums16.Action.extended_trigger_message)
    def extended_trigger(self, requested_message, **_):
        self.seen["trigger"] = requested_message
        return result16.ExtendedTriggerMessage(status="Accepted")


class Py201(ChargePoint201):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.seen: dict[str, Any] = {}
        self.signed: asyncio.Future = asyncio.get_running_loop().create_future()

    @on(enums201.Action.set_variables)
    def set_variables(self, set_variable_data, **_):
        item = set_variable_data[0]
        self.seen[(item["component"]["name"], item["variable"]["name"])] = item["attribute_value"]
        return result201.SetVariables(
            set_variable_result=[
                {"attribute_status": "Accepted", "component": item["component"], "variable": item["variable"]}
            ]
        )

    @on(enums201.Action.certificate_signed)
    def certificate_signed(self, certificate_chain, **_):
        if not self.signed.done():
            self.signed.set_result(certificate_chain)
        return result201.CertificateSigned(status="Accepted")


def basic(cp_id: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()}


@contextlib.asynccontextmanager
async def charge_point(cls, cp_id: str, url: str, proto: str, headers=None, ssl_ctx=None):
    async with websockets.connect(
        f"{url}/ocpp/{cp_id}", subprotocols=[proto], additional_headers=headers or {}, ssl=ssl_ctx,
        open_timeout=TIMEOUT, close_timeout=2,
    ) as ws:
        cp = cls(cp_id, ws, response_timeout=TIMEOUT)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


async def refused_status(url: str, cp_id: str, proto: str, headers=None, ssl_ctx=None) -> int:
    try:
        async with websockets.connect(
            f"{url}/ocpp/{cp_id}", subprotocols=[proto], additional_headers=headers or {}, ssl=ssl_ctx,
            open_timeout=TIMEOUT,
        ):
            return 101
    except websockets.InvalidStatus as e:
        return e.response.status_code


async def events(checks: Checks, server: Server, kind: str, at_least: int) -> list:
    deadline = time.monotonic() + TIMEOUT
    while True:
        rows = [e for e in json.loads(await cli_ok(checks, server, "events", "--limit", "500", "--json")) if e["kind"] == kind]
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- scenarios


async def scenario_16(checks: Checks, server: Server) -> None:
    ws_url = f"ws://127.0.0.1:{server.port}"
    await cli_ok(checks, server, "charger", "add", "PY16", "--password", "first-password-1.6")
    checks.equal("1.6 wrong password refused", await refused_status(ws_url, "PY16", "ocpp1.6", basic("PY16", "nope")), 401)
    async with charge_point(Py16, "PY16", ws_url, "ocpp1.6", basic("PY16", "first-password-1.6")) as cp:
        boot = await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        checks.equal("1.6 boot accepted", boot.status, "Accepted")
        out = json.loads(await cli_ok(checks, server, "charger", "set-password", "PY16", "--generate", "--json"))
        pushed = cp.seen.get("AuthorizationKey")
        checks.equal("AuthorizationKey pushed is the generated password", pushed, out["password"])
        checks.check("AuthorizationKey is 40 hex digits", len(pushed) == 40 and all(c in "0123456789abcdef" for c in pushed))
        res = await cp.call(call16.SignCertificate(csr=csr_for("PY16", new_key())))
        checks.equal("1.6 SignCertificate accepted", res.status, "Accepted")
        chain = await asyncio.wait_for(cp.signed, TIMEOUT)
        checks.equal("1.6 CertificateSigned leaf names the charger", leaf_cn(chain), "PY16")
        res = await cp.call(call16.SignCertificate(csr=csr_for("SOMEBODY", new_key())))
        checks.equal("1.6 SignCertificate for another id rejected", res.status, "Rejected")
        await cp.call(call16.SecurityEventNotification(type="TamperDetectionActivated", timestamp=now_iso(), tech_info="lid"))
        checks.check("SecurityEventNotification recorded", len(await events(checks, server, "security_event", 1)) >= 1)
        ca = server.work / "csms-root.pem"
        ca.write_text(await cli_ok(checks, server, "charger", "cert", "ca"))
        await cli_ok(checks, server, "charger", "cert", "install", "PY16", "--type", "csms-root", str(ca))
        checks.equal("InstallCertificate type", cp.seen.get("install"), "CentralSystemRootCertificate")
        listed = json.loads(await cli_ok(checks, server, "charger", "cert", "list", "PY16", "--json"))
        checks.equal("GetInstalledCertificateIds listed", [c["serial_number"] for c in listed], ["1f"])
        await cli_ok(checks, server, "charger", "cert", "delete", "PY16", "1f")
        checks.equal("DeleteCertificate named the serial", cp.seen.get("delete"), "1f")
        await cli_ok(checks, server, "charger", "cert", "renew", "PY16")
        checks.equal("ExtendedTriggerMessage", cp.seen.get("trigger"), "SignChargePointCertificate")
    checks.equal("old password refused after the push", await refused_status(ws_url, "PY16", "ocpp1.6", basic("PY16", "first-password-1.6")), 401)
    checks.equal("new password opens", await refused_status(ws_url, "PY16", "ocpp1.6", basic("PY16", pushed)), 101)


async def scenario_201_tls(checks: Checks, server: Server, server_ca: Path) -> None:
    ws_url = f"ws://127.0.0.1:{server.port}"
    wss_url = f"wss://localhost:{server.tls_port}"
    trust = ssl.create_default_context(cafile=str(server_ca))
    await cli_ok(checks, server, "charger", "add", "PY201", "--password", "profile-two-password", "--security-profile", "2")
    auth = basic("PY201", "profile-two-password")
    checks.equal("profile 2 over plain ws:// refused", await refused_status(ws_url, "PY201", "ocpp2.0.1", auth), 403)
    key = new_key()
    async with charge_point(Py201, "PY201", wss_url, "ocpp2.0.1", auth, trust) as cp:
        boot = await cp.call(call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"))
        checks.equal("2.0.1 boot over TLS accepted", boot.status, "Accepted")
        await cli_ok(checks, server, "charger", "set-password", "PY201", "another-strong-password", "--json")
        checks.equal("BasicAuthPassword pushed", cp.seen.get(("SecurityCtrlr", "BasicAuthPassword")), "another-strong-password")
        res = await cp.call(call201.SignCertificate(csr=csr_for("PY201", key), certificate_type="ChargingStationCertificate"))
        checks.equal("2.0.1 SignCertificate accepted", res.status, "Accepted")
        chain = await asyncio.wait_for(cp.signed, TIMEOUT)
        checks.equal("2.0.1 CertificateSigned leaf names the charger", leaf_cn(chain), "PY201")
    await cli_ok(checks, server, "charger", "set-security-profile", "PY201", "3")
    checks.equal("profile 3 without a client certificate refused", await refused_status(wss_url, "PY201", "ocpp2.0.1", None, trust), 403)
    (server.work / "py201.pem").write_text(chain)
    (server.work / "py201.key").write_bytes(key_pem(key))
    mtls = ssl.create_default_context(cafile=str(server_ca))
    mtls.load_cert_chain(str(server.work / "py201.pem"), str(server.work / "py201.key"))
    async with charge_point(Py201, "PY201", wss_url, "ocpp2.0.1", None, mtls) as cp:
        hb = await cp.call(call201.Heartbeat())
        checks.check("profile 3 with the issued client certificate works", bool(hb.current_time))
    await cli_ok(checks, server, "charger", "add", "OTHER", "--security-profile", "3")
    checks.equal("PY201's certificate cannot connect as OTHER", await refused_status(wss_url, "OTHER", "ocpp2.0.1", None, mtls), 403)


async def run(checks: Checks, server: Server, server_ca: Path) -> None:
    await scenario_16(checks, server)
    await scenario_201_tls(checks, server, server_ca)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", type=Path, required=True)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    checks = Checks(args.verbose)
    work = Path(tempfile.mkdtemp(prefix="voltyard-security-interop-"))
    server = Server(args.bin.resolve(), work)
    try:
        server_ca = make_server_pki(work)
        server.start()
        asyncio.run(run(checks, server, server_ca))
    except Exception as e:  # noqa: BLE001 - any failure ends the run with the log
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        print(server.tail(), file=sys.stderr)
        server.stop()
        print(f"{checks.passed} passed, 1 failed")
        return 1
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
