#!/usr/bin/env python3
"""Interop test of charger operations: charge points played by the PyPI
`ocpp` library (2.1.0) answer the server's SendLocalList, GetLocalListVersion,
ReserveNow, ChangeAvailability, TriggerMessage / ExtendedTriggerMessage,
SetDisplayMessage and GetDisplayMessages, driven through the voltyard CLI.

The server, CLI runner and checks come from ocpp_py_interop.py (same
directory); this file adds charge points that answer the operations and the
two scenarios (OCPP 1.6J and 2.0.1).

Usage:
    python3 tests/interop/operations_interop.py --bin target/debug/voltyard [--verbose]

Prints `N passed, 0 failed` and exits 0 on success; on the first failed
check it prints what failed, the tail of the server log and
`N passed, 1 failed`, and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp.routing import after, on  # noqa: E402
from ocpp.v16 import call as call16  # noqa: E402
from ocpp.v16 import call_result as result16  # noqa: E402
from ocpp.v16 import enums as enums16  # noqa: E402
from ocpp.v201 import call as call201  # noqa: E402
from ocpp.v201 import call_result as result201  # noqa: E402
from ocpp.v201 import datatypes as types201  # noqa: E402
from ocpp.v201 import enums as enums201  # noqa: E402

from ocpp_py_interop import (  # noqa: E402
    TIMEOUT,
    ChargePoint16,
    ChargePoint201,
    Checks,
    Cli,
    connected,
    now_iso,
    parse_json,
    run_main,
    send,
)


class Ops16(ChargePoint16):
    """A 1.6J charge point with a local list of 2 entries per message."""

    CONFIGURATION = {"HeartbeatInterval": "300", "LocalAuthListMaxLength": "10", "SendLocalListMaxLength": "2"}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.list_version = 0
        self.running = False

    @on(enums16.Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str, **_: Any):
        if update_type == "Differential" and list_version <= self.list_version:
            return result16.SendLocalList(status=enums16.UpdateStatus.version_mismatch)
        self.list_version = list_version
        return result16.SendLocalList(status=enums16.UpdateStatus.accepted)

    @after(enums16.Action.send_local_list)
    def after_send_local_list(self, **payload: Any):
        self.record(enums16.Action.send_local_list, payload)

    @on(enums16.Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any):
        return result16.GetLocalListVersion(list_version=self.list_version)

    @on(enums16.Action.reserve_now)
    def on_reserve_now(self, **_: Any):
        return result16.ReserveNow(status=enums16.ReservationStatus.accepted)

    @after(enums16.Action.reserve_now)
    def after_reserve_now(self, **payload: Any):
        self.record(enums16.Action.reserve_now, payload)

    @on(enums16.Action.change_availability)
    def on_change_availability(self, **_: Any):
        status = enums16.AvailabilityStatus.scheduled if self.running else enums16.AvailabilityStatus.accepted
        return result16.ChangeAvailability(status=status)

    @after(enums16.Action.change_availability)
    def after_change_availability(self, **payload: Any):
        self.record(enums16.Action.change_availability, payload)

    @on(enums16.Action.trigger_message)
    def on_trigger_message(self, **_: Any):
        return result16.TriggerMessage(status=enums16.TriggerMessageStatus.accepted)

    @after(enums16.Action.trigger_message)
    def after_trigger_message(self, **payload: Any):
        self.record(enums16.Action.trigger_message, payload)

    @on(enums16.Action.extended_trigger_message)
    def on_extended_trigger_message(self, **_: Any):
        return result16.ExtendedTriggerMessage(status=enums16.TriggerMessageStatus.accepted)

    @after(enums16.Action.extended_trigger_message)
    def after_extended_trigger_message(self, **payload: Any):
        self.record(enums16.Action.extended_trigger_message, payload)


class Ops201(ChargePoint201):
    """A 2.0.1 charging station with a local list and a display."""

    VARIABLES = {
        ("OCPPCommCtrlr", "HeartbeatInterval"): "120",
        ("LocalAuthListCtrlr", "Entries"): "10",
        ("LocalAuthListCtrlr", "ItemsPerMessage"): "2",
        ("LocalAuthListCtrlr", "BytesPerMessage"): "4000",
    }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.version_number = 0
        self.messages: list[dict] = []

    @on(enums201.Action.send_local_list)
    def on_send_local_list(self, version_number: int, update_type: str, **_: Any):
        self.version_number = version_number
        return result201.SendLocalList(status=enums201.SendLocalListStatusEnumType.accepted)

    @after(enums201.Action.send_local_list)
    def after_send_local_list(self, **payload: Any):
        self.record(enums201.Action.send_local_list, payload)

    @on(enums201.Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any):
        return result201.GetLocalListVersion(version_number=self.version_number)

    @on(enums201.Action.reserve_now)
    def on_reserve_now(self, **_: Any):
        return result201.ReserveNow(status=enums201.ReserveNowStatusEnumType.accepted)

    @after(enums201.Action.reserve_now)
    def after_reserve_now(self, **payload: Any):
        self.record(enums201.Action.reserve_now, payload)

    @on(enums201.Action.change_availability)
    def on_change_availability(self, **_: Any):
        return result201.ChangeAvailability(status=enums201.ChangeAvailabilityStatusEnumType.accepted)

    @after(enums201.Action.change_availability)
    def after_change_availability(self, **payload: Any):
        self.record(enums201.Action.change_availability, payload)

    @on(enums201.Action.trigger_message)
    def on_trigger_message(self, **_: Any):
        return result201.TriggerMessage(status=enums201.TriggerMessageStatusEnumType.accepted)

    @after(enums201.Action.trigger_message)
    def after_trigger_message(self, **payload: Any):
        self.record(enums201.Action.trigger_message, payload)

    @on(enums201.Action.set_display_message)
    def on_set_display_message(self, message: dict, **_: Any):
        self.messages.append(message)
        return result201.SetDisplayMessage(status=enums201.DisplayMessageStatusEnumType.accepted)

    @after(enums201.Action.set_display_message)
    def after_set_display_message(self, **payload: Any):
        self.record(enums201.Action.set_display_message, payload)

    @on(enums201.Action.get_display_messages)
    def on_get_display_messages(self, **_: Any):
        status = (
            enums201.GetDisplayMessagesStatusEnumType.accepted
            if self.messages
            else enums201.GetDisplayMessagesStatusEnumType.unknown
        )
        return result201.GetDisplayMessages(status=status)

    @after(enums201.Action.get_display_messages)
    def after_get_display_messages(self, request_id: int, **_: Any):
        if self.messages:
            # Our own CALL: sent from a task, not from the message loop that must read its answer.
            asyncio.get_running_loop().create_task(self.call(call201.NotifyDisplayMessages(
                request_id=request_id,
                message_info=[types201.MessageInfoType(
                    id=m["id"], priority=m["priority"], message=types201.MessageContentType(
                        format=m["message"]["format"], content=m["message"]["content"]),
                ) for m in self.messages],
                tbc=False,
            )))


async def command(cli: Cli, cp: Any, action: str, *args: str) -> tuple[dict, Any]:
    """Run a CLI command that makes the server send `action`; wait for both."""
    request, running = await cli.command_reaching(cp, action, *args)
    return request, await running


async def lists_until(checks: Checks, cp: Any, action: str, entries: int) -> list[dict]:
    """SendLocalList requests until `entries` entries have arrived."""
    got: list[dict] = []
    while sum(len(p.get("local_authorization_list") or []) for p in got) < entries:
        try:
            got.append(await asyncio.wait_for(cp.next_request(action), TIMEOUT))
        except TimeoutError:
            checks.fail(f"{cp.id} receives {entries} list entries", f"only {got!r}")
    checks.ok(f"{cp.id} receives {entries} list entries in {len(got)} messages")
    for p in got:
        checks.check(f"{cp.id} SendLocalList respects 2 entries per message",
                     len(p.get("local_authorization_list") or []) <= 2, repr(p))
    checks.equal(f"{cp.id} first SendLocalList is Full", got[0].get("update_type"), "Full")
    return got


async def scenario_16(cli: Cli, port: int, checks: Checks) -> None:
    async with connected(Ops16, "OPS16", "ocpp1.6", port, checks) as cp:
        boot = await send(checks, cp, call16.BootNotification(charge_point_model="ops", charge_point_vendor="ocpp-py"))
        checks.equal("OPS16 BootNotification status", boot.status, "Accepted")
        for connector in (1, 2):
            await send(checks, cp, call16.StatusNotification(
                connector_id=connector, error_code=enums16.ChargePointErrorCode.no_error,
                status=enums16.ChargePointStatus.available, timestamp=now_iso()))

        cp.forget_requests()
        out = await cli.ok("charger", "local-list", "sync", "OPS16", "--json")
        report = parse_json(checks, "`voltyard charger local-list sync OPS16`", out)
        checks.equal("OPS16 list update", report.get("update"), "full")
        checks.equal("OPS16 list messages", report.get("messages"), 2)
        await lists_until(checks, cp, enums16.Action.send_local_list, 3)

        await cli.ok("token", "block", "TAG2")
        diff = await asyncio.wait_for(cp.next_request(enums16.Action.send_local_list), TIMEOUT)
        checks.equal("OPS16 differential after a block", diff.get("update_type"), "Differential")
        checks.equal("OPS16 TAG2 listed as Blocked", diff["local_authorization_list"],
                     [{"id_tag": "TAG2", "id_tag_info": {"status": "Blocked"}}])

        request, res = await command(cli, cp, enums16.Action.reserve_now,
                                     "reservation", "add", "OPS16", "--token", "TAG1", "--connector", "1", "--json")
        cli.succeeded(res)
        reservation = parse_json(checks, "`voltyard reservation add`", res.stdout)
        checks.equal("OPS16 ReserveNow connectorId", request.get("connector_id"), 1)
        checks.equal("OPS16 ReserveNow idTag", request.get("id_tag"), "TAG1")
        checks.equal("OPS16 ReserveNow reservationId", request.get("reservation_id"), reservation.get("id"))

        other = await send(checks, cp, call16.StartTransaction(
            connector_id=1, id_tag="TAG3", meter_start=0, timestamp=now_iso()))
        checks.equal("OPS16 another token on the reserved connector", other.id_tag_info["status"], "Invalid")
        mine = await send(checks, cp, call16.StartTransaction(
            connector_id=1, id_tag="TAG1", meter_start=0, timestamp=now_iso(), reservation_id=reservation["id"]))
        checks.equal("OPS16 the reservation's token", mine.id_tag_info["status"], "Accepted")
        listed = json.loads(await cli.ok("reservation", "list", "--json"))
        checks.equal("OPS16 reservation used", listed[0].get("status"), "used")

        cp.running = True
        request, res = await command(cli, cp, enums16.Action.change_availability,
                                     "charger", "availability", "OPS16", "inoperative", "--connector", "1")
        checks.equal("OPS16 ChangeAvailability type", request.get("type"), "Inoperative")
        checks.check("Scheduled exits 0 and says so", res.returncode == 0 and "Scheduled" in res.stdout, res.describe())
        await send(checks, cp, call16.StopTransaction(
            transaction_id=mine.transaction_id, meter_stop=1000, timestamp=now_iso()))
        cp.running = False
        await send(checks, cp, call16.StatusNotification(
            connector_id=1, error_code=enums16.ChargePointErrorCode.no_error,
            status=enums16.ChargePointStatus.unavailable, timestamp=now_iso()))
        shown = json.loads(await cli.ok("charger", "availability", "OPS16", "--json"))
        checks.equal("OPS16 availability effective after the session", shown["requested"][0]["state"], "effective")

        request, res = await command(cli, cp, enums16.Action.trigger_message,
                                     "charger", "trigger", "OPS16", "StatusNotification", "--connector", "1")
        cli.succeeded(res)
        checks.equal("OPS16 TriggerMessage", request.get("requested_message"), "StatusNotification")
        request, res = await command(cli, cp, enums16.Action.extended_trigger_message,
                                     "charger", "trigger", "OPS16", "LogStatusNotification")
        cli.succeeded(res)
        checks.equal("OPS16 ExtendedTriggerMessage", request.get("requested_message"), "LogStatusNotification")

        res = await cli.run("charger", "message", "set", "OPS16", "Hello")
        checks.check("display messages on 1.6 exit 2", res.returncode == 2 and "OCPP 1.6" in res.stderr,
                     res.describe())


async def scenario_201(cli: Cli, port: int, checks: Checks) -> None:
    async with connected(Ops201, "OPS201", "ocpp2.0.1", port, checks) as cp:
        boot = await send(checks, cp, call201.BootNotification(
            charging_station=types201.ChargingStationType(vendor_name="ocpp-py", model="ops"),
            reason=enums201.BootReasonEnumType.power_up))
        checks.equal("OPS201 BootNotification status", boot.status, "Accepted")

        cp.forget_requests()
        await cli.ok("charger", "local-list", "sync", "OPS201")
        got = await lists_until(checks, cp, enums201.Action.send_local_list, 3)
        listed = sorted((e["id_token"]["id_token"], e["id_token_info"]["status"])
                        for p in got for e in p["local_authorization_list"])
        checks.equal("OPS201 list holds the tokens (TAG2 blocked)", listed,
                     [("TAG1", "Accepted"), ("TAG2", "Blocked"), ("TAG3", "Accepted")])
        version = json.loads(await cli.ok("charger", "local-list", "version", "OPS201", "--json"))
        checks.equal("OPS201 version confirmed", version.get("version"), version.get("confirmed_version"))

        request, res = await command(cli, cp, enums201.Action.reserve_now,
                                     "reservation", "add", "OPS201", "--token", "TAG1", "--evse", "1")
        cli.succeeded(res)
        checks.equal("OPS201 ReserveNow evseId", request.get("evse_id"), 1)
        checks.equal("OPS201 ReserveNow idToken", (request.get("id_token") or {}).get("id_token"), "TAG1")

        request, res = await command(cli, cp, enums201.Action.change_availability,
                                     "charger", "availability", "OPS201", "inoperative", "--connector", "2")
        cli.succeeded(res)
        checks.equal("OPS201 ChangeAvailability evse", (request.get("evse") or {}).get("id"), 2)
        await send(checks, cp, call201.StatusNotification(
            timestamp=now_iso(), connector_status=enums201.ConnectorStatusEnumType.unavailable,
            evse_id=2, connector_id=1))
        shown = json.loads(await cli.ok("charger", "availability", "OPS201", "--json"))
        checks.equal("OPS201 availability effective", shown["requested"][0]["state"], "effective")

        request, res = await command(cli, cp, enums201.Action.trigger_message,
                                     "charger", "trigger", "OPS201", "PublishFirmwareStatusNotification")
        cli.succeeded(res)
        checks.equal("OPS201 TriggerMessage", request.get("requested_message"), "PublishFirmwareStatusNotification")
        res = await cli.run("charger", "trigger", "OPS201", "DiagnosticsStatusNotification")
        checks.check("a 1.6 trigger kind on 2.0.1 exits 2 naming the valid ones",
                     res.returncode == 2 and "PublishFirmwareStatusNotification" in res.stderr, res.describe())

        request, res = await command(cli, cp, enums201.Action.set_display_message,
                                     "charger", "message", "set", "OPS201", "Welcome", "--priority", "InFront",
                                     "--message-id", "9")
        cli.succeeded(res)
        checks.equal("OPS201 SetDisplayMessage content", request["message"]["message"]["content"], "Welcome")
        checks.equal("OPS201 SetDisplayMessage priority", request["message"]["priority"], "InFront")
        listed = json.loads(await cli.ok("charger", "message", "list", "OPS201", "--json"))
        checks.equal("OPS201 lists its messages", [(m["id"], m["text"]) for m in listed], [(9, "Welcome")])


async def run_scenarios(cli: Cli, port: int, checks: Checks) -> None:
    for tag in ("TAG1", "TAG2", "TAG3"):
        await cli.ok("token", "add", tag)
    await cli.ok("charger", "add", "OPS16")
    await cli.ok("charger", "add", "OPS201")
    await scenario_16(cli, port, checks)
    await scenario_201(cli, port, checks)


if __name__ == "__main__":
    sys.exit(run_main(lambda cli, port, checks, _workdir: run_scenarios(cli, port, checks), "voltyard-ops-interop-"))
