#!/usr/bin/env python3
"""Interop test of firmware updates, log uploads and DataTransfer: charge
points played by the PyPI `ocpp` library (2.1.0) against `voltyard serve`,
driven through its CLI.

A 1.6J and a 2.0.1 charge point answer UpdateFirmware, GetDiagnostics and
GetLog like real ones: they download the firmware from the URL the server
gave (the server's own HTTP endpoint, same port as OCPP) with urllib, check
its bytes, report Downloading .. Installed, and upload a generated log to
the upload URL (multipart POST for 1.6 diagnostics, raw PUT otherwise),
reporting Uploading / Uploaded. The server's record is read back with
`charger firmware status`, `charger logs uploads` and `charger data-transfers`.

Usage:
    python3 tests/interop/firmware_interop.py --bin target/debug/voltyard [--verbose]

Prints `N passed, 0 failed` and exits 0 on success; on the first failed
check it prints what failed, the server log tail and `N passed, 1 failed`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp.routing import after, on  # noqa: E402
from ocpp.v16 import ChargePoint as BaseChargePoint16  # noqa: E402
from ocpp.v16 import call as call16  # noqa: E402
from ocpp.v16 import call_result as result16  # noqa: E402
from ocpp.v16 import enums as enums16  # noqa: E402
from ocpp.v201 import ChargePoint as BaseChargePoint201  # noqa: E402
from ocpp.v201 import call as call201  # noqa: E402
from ocpp.v201 import call_result as result201  # noqa: E402
from ocpp.v201 import enums as enums201  # noqa: E402
from ocpp_py_interop import (  # noqa: E402
    TIMEOUT,
    Checks,
    Cli,
    connected,
    parse_json,
    run_main,
    send,
)

FIRMWARE = b"PY-FIRMWARE 4.2.0\n" + bytes(range(256)) * 400
LOG_16 = b"py 1.6 diagnostics\n" * 50
SECURITY_16 = b"py 1.6 security log\n" * 20
LOG_201 = b"py 2.0.1 diagnostics log\n" * 40


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def multipart(name: str, content: bytes) -> tuple[bytes, str]:
    boundary = "py-interop-boundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Transfers:
    """What a charge point fetched and uploaded, and the statuses to send."""

    def __init__(self):
        self.downloaded: asyncio.Queue[bytes] = asyncio.Queue()
        self.uploaded: asyncio.Queue[int] = asyncio.Queue()
        self.tasks: list[asyncio.Task] = []

    def spawn(self, coro) -> None:
        self.tasks.append(asyncio.create_task(coro))


class ChargePoint16(BaseChargePoint16):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.t = Transfers()

    @on(enums16.Action.update_firmware)
    def on_update_firmware(self, **_: Any):
        return result16.UpdateFirmware()

    @after(enums16.Action.update_firmware)
    def after_update_firmware(self, location: str, **_: Any):
        async def run():
            await self.call(call16.FirmwareStatusNotification(status=enums16.FirmwareStatus.downloading))
            status, body = await in_thread(http, "GET", location)
            self.t.downloaded.put_nowait(body if status == 200 else b"")
            for s in ["downloaded", "installing", "installed"]:
                await self.call(call16.FirmwareStatusNotification(status=getattr(enums16.FirmwareStatus, s)))

        self.t.spawn(run())

    @on(enums16.Action.get_diagnostics)
    def on_get_diagnostics(self, **_: Any):
        return result16.GetDiagnostics(file_name="py16-diag.log")

    @after(enums16.Action.get_diagnostics)
    def after_get_diagnostics(self, location: str, **_: Any):
        async def run():
            await self.call(call16.DiagnosticsStatusNotification(status=enums16.DiagnosticsStatus.uploading))
            body, ct = multipart("py16-diag.log", LOG_16)
            status, _ = await in_thread(http, "POST", location, body, {"Content-Type": ct})
            self.t.uploaded.put_nowait(status)
            await self.call(call16.DiagnosticsStatusNotification(status=enums16.DiagnosticsStatus.uploaded))

        self.t.spawn(run())

    @on(enums16.Action.get_log)
    def on_get_log(self, **_: Any):
        return result16.GetLog(status=enums16.LogStatus.accepted, filename="py16-sec.log")

    @after(enums16.Action.get_log)
    def after_get_log(self, log: dict, request_id: int, **_: Any):
        async def run():
            url = log["remote_location"].rstrip("/") + "/py16-sec.log"
            status, _ = await in_thread(http, "PUT", url, SECURITY_16)
            self.t.uploaded.put_nowait(status)
            await self.call(
                call16.LogStatusNotification(status=enums16.UploadLogStatus.uploaded, request_id=request_id)
            )

        self.t.spawn(run())

    @on(enums16.Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, data: str | None = None, **_: Any):
        return result16.DataTransfer(status=enums16.DataTransferStatus.accepted, data=f"echo {data}")


class ChargePoint201(BaseChargePoint201):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.t = Transfers()

    @on(enums201.Action.update_firmware)
    def on_update_firmware(self, **_: Any):
        return result201.UpdateFirmware(status=enums201.UpdateFirmwareStatusEnumType.accepted)

    @after(enums201.Action.update_firmware)
    def after_update_firmware(self, request_id: int, firmware: dict, **_: Any):
        async def report(s: str):
            status = getattr(enums201.FirmwareStatusEnumType, s)
            await self.call(call201.FirmwareStatusNotification(status=status, request_id=request_id))

        async def run():
            await report("downloading")
            status, body = await in_thread(http, "GET", firmware["location"])
            self.t.downloaded.put_nowait(body if status == 200 else b"")
            for s in ["downloaded", "installing", "installed"]:
                await report(s)

        self.t.spawn(run())

    @on(enums201.Action.get_log)
    def on_get_log(self, **_: Any):
        return result201.GetLog(status=enums201.LogStatusEnumType.accepted, filename="py201.log")

    @after(enums201.Action.get_log)
    def after_get_log(self, log: dict, request_id: int, **_: Any):
        async def run():
            await self.call(
                call201.LogStatusNotification(status=enums201.UploadLogStatusEnumType.uploading, request_id=request_id)
            )
            status, _ = await in_thread(http, "PUT", log["remote_location"], LOG_201)
            self.t.uploaded.put_nowait(status)
            await self.call(
                call201.LogStatusNotification(status=enums201.UploadLogStatusEnumType.uploaded, request_id=request_id)
            )

        self.t.spawn(run())


async def poll_json(cli: Cli, checks: Checks, what: str, args: list[str], done) -> Any:
    """Run a CLI read until `done(result)` holds (bounded)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        r = await cli.run(*args, "--json")
        if r.returncode == 0:
            v = json.loads(r.stdout)
            if done(v):
                checks.ok(what)
                return v
        if asyncio.get_running_loop().time() > deadline:
            checks.fail(what, r.describe())
        await asyncio.sleep(0.3)


async def firmware_and_logs_16(cli: Cli, port: int, checks: Checks, fw: Path) -> None:
    async with connected(ChargePoint16, "FW16", "ocpp1.6", port, checks) as cp:
        await send(checks, cp, call16.BootNotification(charge_point_vendor="PyVendor", charge_point_model="PyFW"))
        out = await cli.ok("charger", "firmware", "update", "FW16", "--file", str(fw), "--json")
        url = parse_json(checks, "firmware update", out)["url"]
        checks.check("the firmware URL is the server's own", url.startswith(f"http://127.0.0.1:{port}/files/firmware/"), url)
        body = await asyncio.wait_for(cp.t.downloaded.get(), TIMEOUT)
        checks.equal("FW16 downloaded the exact firmware bytes", body, FIRMWARE)
        hist = await poll_json(
            cli, checks, "FW16 firmware installed", ["charger", "firmware", "status", "FW16"],
            lambda v: v and v[-1]["state"] == "installed",
        )
        checks.equal(
            "FW16 status history",
            [s["status"] for s in hist[-1]["statuses"]],
            ["Downloading", "Downloaded", "Installing", "Installed"],
        )
        r = parse_json(checks, "logs fetch FW16", await cli.ok("charger", "logs", "fetch", "FW16", "--wait", "--json"))
        checks.equal("FW16 diagnostics upload answered 201", await asyncio.wait_for(cp.t.uploaded.get(), TIMEOUT), 201)
        checks.equal("FW16 diagnostics stored size", r["files"][0]["bytes"], len(LOG_16))
        stored = cli.data_dir / r["files"][0]["path"]
        checks.equal("FW16 diagnostics stored bytes", stored.read_bytes(), LOG_16)
        r = parse_json(
            checks, "security logs fetch FW16",
            await cli.ok("charger", "logs", "fetch", "FW16", "--type", "security", "--wait", "--json"),
        )
        checks.equal("FW16 security log stored bytes", (cli.data_dir / r["files"][0]["path"]).read_bytes(), SECURITY_16)
        out = await cli.ok("charger", "data-transfer", "FW16", "--vendor", "org.py", "--data", "ping", "--json")
        checks.equal("FW16 answers DataTransfer", parse_json(checks, "data-transfer", out)["detail"], "echo ping")
        await send(checks, cp, call16.DataTransfer(vendor_id="org.unknown", data="hello"))
        for t in cp.t.tasks:
            await t


async def firmware_and_logs_201(cli: Cli, port: int, checks: Checks, fw: Path) -> None:
    async with connected(ChargePoint201, "FW201", "ocpp2.0.1", port, checks) as cp:
        await send(
            checks, cp,
            call201.BootNotification(charging_station={"model": "PyFW", "vendor_name": "PyVendor"}, reason="PowerUp"),
        )
        await cli.ok("charger", "firmware", "update", "FW201", "--file", str(fw))
        body = await asyncio.wait_for(cp.t.downloaded.get(), TIMEOUT)
        checks.equal("FW201 downloaded the exact firmware bytes", body, FIRMWARE)
        await poll_json(
            cli, checks, "FW201 firmware installed", ["charger", "firmware", "status", "FW201"],
            lambda v: v and v[-1]["state"] == "installed",
        )
        r = parse_json(checks, "logs fetch FW201", await cli.ok("charger", "logs", "fetch", "FW201", "--wait", "--json"))
        checks.equal("FW201 log upload answered 201", await asyncio.wait_for(cp.t.uploaded.get(), TIMEOUT), 201)
        checks.equal("FW201 log stored bytes", (cli.data_dir / r["files"][0]["path"]).read_bytes(), LOG_201)
        answer = await send(checks, cp, call201.DataTransfer(vendor_id="org.unknown", data={"a": 1}))
        checks.equal("FW201 unknown vendor", answer.status, "UnknownVendorId")
        shown = json.loads(await cli.ok("charger", "data-transfers", "FW201", "--json"))
        checks.equal("FW201 DataTransfer shown", [d["vendor_id"] for d in shown], ["org.unknown"])
        for t in cp.t.tasks:
            await t


async def run_scenarios(cli: Cli, port: int, checks: Checks, workdir: Path) -> None:
    await cli.ok("charger", "add", "FW16")
    await cli.ok("charger", "add", "FW201")
    fw = workdir / "py-fw-4.2.0.bin"
    fw.write_bytes(FIRMWARE)
    await firmware_and_logs_16(cli, port, checks, fw)
    await firmware_and_logs_201(cli, port, checks, fw)


if __name__ == "__main__":
    sys.exit(run_main(run_scenarios, "voltyard-fw-interop-"))
