#!/usr/bin/env python3
"""Interop test of the OCPP 2.0.1 device model: a charging station played by
the PyPI `ocpp` library (2.1.0) against a voltyard server driven by its CLI.

The station is asked for its full inventory when it boots for the first time
and answers with a report in three NotifyReport parts; the operator asks for
one component with `charger report --wait`, reads the stored model with
`charger variables`, installs a monitor with `charger monitor set`, and the
station reports an event for it (NotifyEvent), an external limit from an
energy manager (NotifyChargingLimit) and its end (ClearedChargingLimit).

Usage:
    python3 tests/interop/device_model_interop.py --bin target/debug/voltyard [--verbose]

Prints `N passed, 0 failed` and exits 0 on success; on the first failed
check it prints what failed and the tail of the server log, and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocpp.routing import after, on  # noqa: E402
from ocpp.v201 import ChargePoint as BaseChargePoint201  # noqa: E402
from ocpp.v201 import call as call201  # noqa: E402
from ocpp.v201 import call_result as result201  # noqa: E402
from ocpp.v201 import datatypes as types201  # noqa: E402
from ocpp.v201 import enums as enums201  # noqa: E402
from ocpp_py_interop import (  # noqa: E402
    TIMEOUT,
    Checks,
    Cli,
    connected,
    Inbox,
    now_iso,
    parse_json,
    run_main,
    send,
)

CP_ID = "PYDM"
MONITOR_ID = 5


def variable(component: dict, name: str, value: str, unit: str | None, data_type: str) -> dict:
    characteristics = {"data_type": data_type, "supports_monitoring": unit is not None}
    if unit:
        characteristics["unit"] = unit
    return {
        "component": component,
        "variable": {"name": name},
        "variable_attribute": [{"type": "Actual", "value": value, "mutability": "ReadOnly"}],
        "variable_characteristics": characteristics,
    }


# The station's device model, reported three variables a part.
MODEL = [
    variable({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", "300", "s", "integer"),
    variable({"name": "SecurityCtrlr"}, "SecurityProfile", "1", None, "integer"),
    variable({"name": "ChargingStation"}, "Model", "interop", None, "string"),
    variable({"name": "EVSE", "evse": {"id": 1}}, "Power", "0", "W", "decimal"),
    variable({"name": "EVSE", "evse": {"id": 1}}, "AvailabilityState", "Available", None, "OptionList"),
    variable({"name": "Connector", "evse": {"id": 1, "connector_id": 1}}, "ConnectorType", "cType2", None, "string"),
    variable({"name": "TemperatureSensor"}, "Temperature", "31", "Celsius", "decimal"),
]
PART = 3


class Station(Inbox, BaseChargePoint201):
    """Answers report and monitoring requests as a real station does: the
    CALLRESULT first, then the report parts."""

    def report(self, request_id: int, rows: list[dict]) -> None:
        async def parts() -> None:
            chunks = [rows[i:i + PART] for i in range(0, len(rows), PART)]
            for seq, chunk in enumerate(chunks):
                await self.call(call201.NotifyReport(
                    request_id=request_id, generated_at=now_iso(), seq_no=seq,
                    tbc=seq < len(chunks) - 1, report_data=chunk,
                ))
        asyncio.create_task(parts())

    @on(enums201.Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any):
        return result201.GetBaseReport(status=enums201.GenericDeviceModelStatusEnumType.accepted)

    @after(enums201.Action.get_base_report)
    def after_get_base_report(self, request_id: int, report_base: str, **payload: Any):
        self.record(enums201.Action.get_base_report, {"request_id": request_id, "report_base": report_base})
        self.report(request_id, MODEL)

    @on(enums201.Action.get_report)
    def on_get_report(self, request_id: int, **_: Any):
        return result201.GetReport(status=enums201.GenericDeviceModelStatusEnumType.accepted)

    @after(enums201.Action.get_report)
    def after_get_report(self, request_id: int, component_variable: list[dict] | None = None, **_: Any):
        wanted = component_variable or []
        rows = [
            r for r in MODEL
            if any(w["component"]["name"] == r["component"]["name"]
                   and w.get("variable", {}).get("name", r["variable"]["name"]) == r["variable"]["name"]
                   for w in wanted)
        ]
        self.record(enums201.Action.get_report, {"request_id": request_id, "component_variable": wanted})
        self.report(request_id, rows)

    @on(enums201.Action.set_variable_monitoring)
    def on_set_variable_monitoring(self, set_monitoring_data: list[dict], **_: Any):
        return result201.SetVariableMonitoring(set_monitoring_result=[
            types201.SetMonitoringResultType(
                id=MONITOR_ID, status=enums201.SetMonitoringStatusEnumType.accepted,
                type=d["type"], severity=d["severity"], component=d["component"], variable=d["variable"],
            )
            for d in set_monitoring_data
        ])

    @after(enums201.Action.set_variable_monitoring)
    def after_set_variable_monitoring(self, **payload: Any):
        self.record(enums201.Action.set_variable_monitoring, payload)

    # The station is on a circuit: load management gives it its safe profile.
    @on(enums201.Action.set_charging_profile)
    def on_set_charging_profile(self, **_: Any):
        return result201.SetChargingProfile(status=enums201.ChargingProfileStatusEnumType.accepted)


async def cli_json(cli: Cli, checks: Checks, *args: str) -> Any:
    return parse_json(checks, f"`voltyard {' '.join(args)}`", await cli.ok(*args, "--json"))


async def eventually(checks: Checks, name: str, probe, timeout: float = TIMEOUT) -> Any:
    """Run `probe` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    last = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            checks.ok(name)
            return last
        await asyncio.sleep(0.2)
    checks.fail(name, f"not within {timeout:.0f}s (last: {last!r})")


def dlm_entry(status: dict, charger: str) -> dict | None:
    for site in status.get("sites", []):
        for c in site.get("chargers", []):
            if c.get("id") == charger:
                return c
    return None


async def scenario(cli: Cli, port: int, checks: Checks) -> None:
    await cli.ok("circuit", "add", "grid", "--max-current", "63")
    await cli.ok("charger", "add", CP_ID, "--circuit", "grid", "--max-current", "32")
    async with connected(Station, CP_ID, "ocpp2.0.1", port, checks) as cp:
        boot = await send(checks, cp, call201.BootNotification(
            charging_station=types201.ChargingStationType(vendor_name="ocpp-py", model="interop", firmware_version="1.0"),
            reason=enums201.BootReasonEnumType.power_up,
        ))
        checks.equal(f"{CP_ID} BootNotification status", boot.status, "Accepted")
        asked = await asyncio.wait_for(cp.next_request(enums201.Action.get_base_report), TIMEOUT)
        checks.equal("a new station is asked for its FullInventory", asked["report_base"], "FullInventory")

        async def complete():
            st = await cli_json(cli, checks, "charger", "report", "status", CP_ID)
            return st if st.get("state") == "complete" else None

        st = await eventually(checks, "the boot inventory is stored completely", complete)
        checks.equal("the boot inventory came in three parts", st.get("parts"), [0, 1, 2])
        checks.equal("the boot inventory's requestId", st.get("request_id"), asked["request_id"])
        rows = await cli_json(cli, checks, "charger", "variables", CP_ID)
        checks.equal("every reported variable is stored", len(rows), len(MODEL))
        by_name = {r["name"]: r for r in rows}
        temp = by_name.get("TemperatureSensor.Temperature") or {}
        checks.equal("the temperature's unit", temp.get("unit"), "Celsius")
        checks.equal("the temperature supports monitoring", temp.get("supports_monitoring"), True)
        checks.check("a connector's variable keeps its EVSE and connector", "Connector@1/1.ConnectorType" in by_name,
                     f"names: {sorted(by_name)}")

        out = await cli.ok("charger", "report", CP_ID, "--component", "EVSE@1", "--variable", "Power", "--wait", "--json")
        st = parse_json(checks, "`voltyard charger report --wait`", out)
        checks.equal("GetReport of EVSE@1.Power completes", st.get("state"), "complete")
        checks.equal("GetReport of EVSE@1.Power carries one variable", st.get("items"), 1)

        request, command = await cli.command_reaching(
            cp, enums201.Action.set_variable_monitoring,
            "charger", "monitor", "set", CP_ID, "--component", "TemperatureSensor", "--variable", "Temperature",
            "--type", "UpperThreshold", "--value", "60", "--severity", "2", "--json",
        )
        data = request["set_monitoring_data"][0]
        checks.equal("SetVariableMonitoring type", data.get("type"), "UpperThreshold")
        checks.equal("SetVariableMonitoring severity", data.get("severity"), 2)
        installed = parse_json(checks, "`voltyard charger monitor set`", cli.succeeded(await command))
        checks.equal("the station's monitor id", installed.get("id"), MONITOR_ID)

        await send(checks, cp, call201.NotifyEvent(generated_at=now_iso(), seq_no=0, tbc=False, event_data=[{
            "event_id": 1, "timestamp": now_iso(), "trigger": "Alerting", "actual_value": "63.5",
            "component": {"name": "TemperatureSensor"}, "variable": {"name": "Temperature"},
            "variable_monitoring_id": MONITOR_ID, "event_notification_type": "CustomMonitor",
        }]))
        events = await cli_json(cli, checks, "events")
        device = [e for e in events if e.get("kind") == "device_event"]
        checks.check("NotifyEvent is stored as a device_event", len(device) == 1, json.dumps(events))
        note = device[0].get("device") or {}
        checks.equal("the device event's severity is its monitor's", note.get("severity"), 2)
        checks.equal("the device event's subject", note.get("subject"), "TemperatureSensor.Temperature")
        rows = await cli_json(cli, checks, "charger", "variables", CP_ID, "--component", "TemperatureSensor")
        checks.equal("the event's value updates the stored one", rows[0].get("value"), "63.5")

        await send(checks, cp, call201.NotifyChargingLimit(
            evse_id=1,
            charging_limit={"charging_limit_source": "EMS", "is_grid_critical": False},
            charging_schedule=[{"id": 1, "charging_rate_unit": "A",
                                "charging_schedule_period": [{"start_period": 0, "limit": 12}]}],
        ))

        async def capped():
            c = dlm_entry(await cli_json(cli, checks, "dlm", "status"), CP_ID) or {}
            return c if (c.get("cap") or {}).get("source") == "EMS" else None

        c = await eventually(checks, "the EMS limit bounds the charger in `dlm status`", capped)
        checks.equal("the bound", c["cap"]["current"], 12)

        await send(checks, cp, call201.ClearedChargingLimit(charging_limit_source="EMS", evse_id=1))

        async def lifted():
            c = dlm_entry(await cli_json(cli, checks, "dlm", "status"), CP_ID)
            return c if c is not None and "cap" not in c else None

        await eventually(checks, "ClearedChargingLimit lifts the bound", lifted)
        kinds = [e.get("kind") for e in await cli_json(cli, checks, "events")]
        checks.check("both limit messages are events", "charging_limit" in kinds and "charging_limit_cleared" in kinds,
                     f"kinds: {kinds}")


if __name__ == "__main__":
    sys.exit(run_main(lambda cli, port, checks, _workdir: scenario(cli, port, checks), "voltyard-dm-interop-"))
