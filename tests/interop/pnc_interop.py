#!/usr/bin/env python3
"""Interop test of ISO 15118 Plug & Charge on OCPP 2.0.1: a charge point
played by the PyPI `ocpp` library's v201 ChargePoint against `voltyard
serve` with the local contract-certificate source, checked with the
`cryptography` package (an independent X.509 and OCSP implementation).

Covers: Get15118EVCertificate (Install) in the documented test encoding,
the issued chain verified up to the MO root `pnc status` shows,
GetCertificateStatus answered with a DER OCSP response that `cryptography`
parses and whose signature verifies with the delegated responder, whose own
certificate the MO sub-CA signed; Authorize with the certificate chain and
with iso15118CertificateHashData; `cert revoke` making OCSP answer REVOKED
and Authorize CertificateRevoked; a garbage exiRequest answered Failed.

Usage:
    python3 tests/interop/pnc_interop.py --bin target/debug/voltyard [--verbose]

Prints `N passed, 0 failed` and exits 0 on success, else the failure, the
server log's tail and `N passed, 1 failed`, exit 1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import sys
from pathlib import Path

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call as call201

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp_py_interop import TIMEOUT, Checks, Cli, run_main  # noqa: E402

EMAID = "DE-VYD-C00000042-3"


def csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_exi(emaid: str) -> str:
    doc = {"format": "voltyard-test-exi/1", "csr": csr_pem(), "emaid": emaid}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def hash_data(leaf: x509.Certificate, issuer: x509.Certificate) -> dict:
    key_bits = issuer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(issuer.subject.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(key_bits).hexdigest(),
        "serialNumber": format(leaf.serial_number, "x"),
        "responderURL": "http://ocsp.invalid",
    }


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:  # noqa: BLE001 - any verification error is a failed check
        return False


@contextlib.asynccontextmanager
async def charge_point(cp_id: str, url: str):
    async with websockets.connect(
        f"{url}/ocpp/{cp_id}", subprotocols=["ocpp2.0.1"], open_timeout=TIMEOUT, close_timeout=2
    ) as ws:
        cp = ChargePoint201(cp_id, ws, response_timeout=TIMEOUT)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await task


async def ocsp_status(checks: Checks, cp, hd: dict, responder_issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    res = await cp.call(call201.GetCertificateStatus(ocsp_request_data=hd))
    checks.equal("GetCertificateStatus status", res.status, "Accepted")
    resp = ocsp.load_der_ocsp_response(base64.b64decode(res.ocsp_result))
    checks.equal("OCSP response status", resp.response_status, ocsp.OCSPResponseStatus.SUCCESSFUL)
    checks.equal("OCSP answers for the serial", format(resp.serial_number, "x"), hd["serialNumber"])
    responder = resp.certificates[0]
    checks.check("the OCSP responder certificate is signed by the MO sub-CA", verify_signed_by(responder, responder_issuer))
    checks.check(
        "the responder has the OCSPSigning key usage",
        x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value,
    )
    responder.public_key().verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    checks.check("the OCSP response signature verifies", True)
    return resp.certificate_status


async def scenario(cli: Cli, port: int, checks: Checks, _workdir: Path) -> None:
    url = f"ws://127.0.0.1:{port}"
    await cli.ok("charger", "add", "PNC201")
    async with charge_point("PNC201", url) as cp:
        boot = await cp.call(
            call201.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
        )
        checks.equal("boot accepted", boot.status, "Accepted")
        res = await cp.call(
            call201.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef", action="Install", exi_request=test_exi(EMAID)
            )
        )
        checks.equal("Get15118EVCertificate accepted", res.status, "Accepted")
        doc = json.loads(base64.b64decode(res.exi_response))
        chain = x509.load_pem_x509_certificates(doc["contractCertificateChain"].encode())
        leaf, sub = chain[0], chain[1]
        checks.equal("the contract certificate names the eMAID", leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, EMAID)
        status = json.loads(await cli.ok("pnc", "status", "--json"))
        mo_root = x509.load_pem_x509_certificate(status["mo_root_pem"].encode())
        checks.check("the contract certificate is signed by the MO sub-CA", verify_signed_by(leaf, sub))
        checks.check("the MO sub-CA is signed by the MO root", verify_signed_by(sub, mo_root))
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        checks.check("contract key usages (digitalSignature, keyAgreement)", ku.digital_signature and ku.key_agreement)
        checks.equal("pnc status lists it", status["certificates"][0]["serial"], format(leaf.serial_number, "x"))

        await cli.ok("token", "add", EMAID, "--kind", "contract")
        pem = doc["contractCertificateChain"]
        res = await cp.call(call201.Authorize(id_token={"idToken": EMAID, "type": "eMAID"}, certificate=pem))
        checks.equal("Authorize with the chain: token", res.id_token_info["status"], "Accepted")
        checks.equal("Authorize with the chain: certificate", res.certificate_status, "Accepted")
        hd = hash_data(leaf, sub)
        res = await cp.call(
            call201.Authorize(id_token={"idToken": EMAID, "type": "eMAID"}, iso15118_certificate_hash_data=[hd])
        )
        checks.equal("Authorize with hash data", res.certificate_status, "Accepted")
        checks.equal("OCSP: good", await ocsp_status(checks, cp, hd, sub), ocsp.OCSPCertStatus.GOOD)

        await cli.ok("cert", "revoke", format(leaf.serial_number, "x"))
        checks.equal("OCSP: revoked", await ocsp_status(checks, cp, hd, sub), ocsp.OCSPCertStatus.REVOKED)
        res = await cp.call(call201.Authorize(id_token={"idToken": EMAID, "type": "eMAID"}, certificate=pem))
        checks.equal("Authorize after revocation: certificate", res.certificate_status, "CertificateRevoked")
        checks.equal("Authorize after revocation: token", res.id_token_info["status"], "Invalid")

        res = await cp.call(
            call201.Get15118EVCertificate(
                iso15118_schema_version="urn:iso:15118:2:2013:MsgDef", action="Install", exi_request="bm90IEVYSQ=="
            )
        )
        checks.equal("garbage exiRequest: Failed", res.status, "Failed")
        checks.equal("garbage exiRequest: reason", res.status_info["reason_code"], "UnsupportedEXI")


def main() -> int:
    return run_main(scenario, prefix="voltyard-pnc-interop-")


if __name__ == "__main__":
    sys.exit(main())
