#!/usr/bin/env python3
"""Interop test: real OCPP charge points, played by the PyPI `ocpp` library
(2.1.0), against a voltyard server driven through its CLI.

The script starts `voltyard serve` on a free port with a throwaway data dir,
registers chargers and tokens through the CLI, then runs one OCPP 1.6J and
one OCPP 2.0.1 charge point through boot, authorization, a transaction that
the operator stops remotely, and a few remote commands. Every operator action
is a CLI run, which reaches the server over DIR/control.sock.

Usage:
    python3 tests/interop/ocpp_py_interop.py --bin target/debug/voltyard [--verbose]

Prints `N passed, 0 failed` and exits 0 on success. On the first failed
check it prints what failed, the tail of the server log and
`N passed, 1 failed`, and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import websockets
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as BaseChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as types16
from ocpp.v16 import enums as enums16
from ocpp.v201 import ChargePoint as BaseChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as types201
from ocpp.v201 import enums as enums201

# Upper bound of every single wait: a CALL's answer, a CLI run, a request
# the server should send to a charge point.
TIMEOUT = 20.0
STARTUP_TIMEOUT = 15.0
LOG_TAIL_LINES = 60

# The charger's own id of the one 2.0.1 transaction in this test.
TX_201 = "py-tx-1"


# ---------------------------------------------------------------- checks


class CheckFailed(Exception):
    """A named expectation did not hold; the scenario cannot go on."""


class Checks:
    """Counts passed checks; the first failure ends the run."""

    def __init__(self, verbose: bool):
        self.passed = 0
        self.last: str | None = None
        self.verbose = verbose

    def ok(self, name: str) -> None:
        self.passed += 1
        self.last = name
        if self.verbose:
            print(f"ok {self.passed:3} {name}", flush=True)

    def fail(self, name: str, detail: str) -> NoReturn:
        raise CheckFailed(f"{name}: {detail}")

    def check(self, name: str, condition: bool, detail: str = "") -> None:
        if not condition:
            self.fail(name, detail or "condition is false")
        self.ok(name)

    def equal(self, name: str, actual: Any, expected: Any) -> None:
        self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")


def is_timestamp(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
        return True
    except (TypeError, ValueError):
        return False


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_json(checks: Checks, what: str, text: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        checks.fail(f"{what} prints JSON", f"{e}: {text!r}")
    checks.ok(f"{what} prints JSON")
    return data


def expect_json_mentions(checks: Checks, what: str, text: str, *needles: str) -> None:
    """The output is JSON and contains every needle somewhere in its text."""
    parse_json(checks, what, text)
    for needle in needles:
        checks.check(f"{what} output mentions {needle!r}", needle in text, f"output: {text!r}")


def expect_fields(checks: Checks, what: str, row: dict, **expected: Any) -> None:
    for key, value in expected.items():
        checks.equal(f"{what} {key}", row.get(key), value)


def pick(checks: Checks, what: str, rows: list, **match: Any) -> dict:
    """The single row whose fields equal `match`."""
    found = [r for r in rows if isinstance(r, dict) and all(r.get(k) == v for k, v in match.items())]
    checks.check(f"exactly one {what}", len(found) == 1, f"{len(found)} rows match {match} in {rows!r}")
    return found[0]


# ---------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """`voltyard serve` as a subprocess with its own data dir and log file."""

    def __init__(self, binary: Path, workdir: Path):
        self.binary = binary
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.data_dir.mkdir()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> str | None:
        """Wait until the control socket exists and the OCPP port accepts
        TCP; return why not, or None when ready."""
        control_socket = self.data_dir / "control.sock"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"server exited with code {self.proc.returncode}"
            if control_socket.exists() and port_accepts(self.port):
                return None
            time.sleep(0.1)
        return f"not ready within {STARTUP_TIMEOUT:.0f}s"

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])


# ---------------------------------------------------------------- CLI


@dataclass
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"`voltyard {' '.join(self.args)}` exited {self.returncode}\n"
            f"stdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"
        )


class Cli:
    """Runs `BIN --data-dir DIR ...` as an asyncio subprocess, so that the
    charge points keep answering the server's CALLs while a command waits."""

    def __init__(self, binary: Path, data_dir: Path, checks: Checks):
        self.binary = binary
        self.data_dir = data_dir
        self.checks = checks

    async def run(self, *args: str) -> CliResult:
        proc = await asyncio.create_subprocess_exec(
            str(self.binary), "--data-dir", str(self.data_dir), *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        except TimeoutError:
            self.checks.fail(f"`voltyard {' '.join(args)}`", f"did not finish within {TIMEOUT:.0f}s")
        finally:
            # Also reached when the task running this command is cancelled.
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return CliResult(args, proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))

    def succeeded(self, result: CliResult) -> str:
        """Check the exit code; return stdout."""
        self.checks.check(f"`voltyard {' '.join(result.args)}` exits 0", result.returncode == 0, result.describe())
        return result.stdout

    async def ok(self, *args: str) -> str:
        return self.succeeded(await self.run(*args))

    async def list_json(self, noun: str) -> list:
        rows = parse_json(self.checks, f"`voltyard {noun} list --json`", await self.ok(noun, "list", "--json"))
        self.checks.check(f"`voltyard {noun} list --json` is an array", isinstance(rows, list), f"got {rows!r}")
        return rows

    async def command_reaching(self, cp: Inbox, action: str, *args: str) -> tuple[dict, asyncio.Task]:
        """Start a CLI command that should make the server send `action` to
        `cp`, and wait until the charge point has answered it.

        Returns the request payload (snake_case keys) and the still-running
        command: the caller does what the charge point has to do next (e.g.
        send StopTransaction) and then checks the command's result, since the
        command may itself wait for that follow-up."""
        name = f"{cp.id} receives {action} from `voltyard {' '.join(args)}`"
        cp.forget_requests()
        command = asyncio.create_task(self.run(*args))
        request = asyncio.create_task(cp.next_request(action))
        done, _ = await asyncio.wait({command, request}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if request not in done:
            request.cancel()
            if command in done:
                self.checks.fail(name, command.result().describe())
            # Await the cancelled command so that its subprocess is killed and
            # reaped while the event loop still runs.
            command.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await command
            self.checks.fail(name, f"nothing within {TIMEOUT:.0f}s")
        self.checks.ok(name)
        return request.result(), command


# ---------------------------------------------------------------- charge points


class Inbox:
    """Mixin for a charge point: keeps the requests the server sent.

    Requests are recorded by @after hooks, which the library runs once the
    CALLRESULT has been sent, so a test that waits on the inbox and then
    sends a follow-up message keeps the real order on the wire."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.inbox: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()

    def record(self, action: str, payload: dict) -> None:
        self.inbox.put_nowait((action, payload))

    def forget_requests(self) -> None:
        while not self.inbox.empty():
            self.inbox.get_nowait()

    async def next_request(self, action: str) -> dict:
        """The next request of type `action`. Others are skipped: a server may
        send requests of its own accord (e.g. configuration after a boot)."""
        while True:
            got, payload = await self.inbox.get()
            if got == action:
                return payload


class ChargePoint16(Inbox, BaseChargePoint16):
    """An OCPP 1.6J charge point that accepts every remote command."""

    CONFIGURATION = {"HeartbeatInterval": "300"}

    @on(enums16.Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, **_: Any):
        return result16.RemoteStopTransaction(status=enums16.RemoteStartStopStatus.accepted)

    @after(enums16.Action.remote_stop_transaction)
    def after_remote_stop_transaction(self, **payload: Any):
        self.record(enums16.Action.remote_stop_transaction, payload)

    @on(enums16.Action.reset)
    def on_reset(self, **_: Any):
        return result16.Reset(status=enums16.ResetStatus.accepted)

    @after(enums16.Action.reset)
    def after_reset(self, **payload: Any):
        self.record(enums16.Action.reset, payload)

    @on(enums16.Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any):
        wanted = key or list(self.CONFIGURATION)
        return result16.GetConfiguration(
            configuration_key=[
                types16.KeyValue(key=k, readonly=False, value=self.CONFIGURATION[k])
                for k in wanted
                if k in self.CONFIGURATION
            ],
            unknown_key=[k for k in wanted if k not in self.CONFIGURATION] or None,
        )

    @after(enums16.Action.get_configuration)
    def after_get_configuration(self, **payload: Any):
        self.record(enums16.Action.get_configuration, payload)


class ChargePoint201(Inbox, BaseChargePoint201):
    """An OCPP 2.0.1 charging station that accepts every remote command."""

    VARIABLES = {("OCPPCommCtrlr", "HeartbeatInterval"): "120"}

    @on(enums201.Action.request_stop_transaction)
    def on_request_stop_transaction(self, **_: Any):
        return result201.RequestStopTransaction(status=enums201.RequestStartStopStatusEnumType.accepted)

    @after(enums201.Action.request_stop_transaction)
    def after_request_stop_transaction(self, **payload: Any):
        self.record(enums201.Action.request_stop_transaction, payload)

    @on(enums201.Action.request_start_transaction)
    def on_request_start_transaction(self, **_: Any):
        return result201.RequestStartTransaction(status=enums201.RequestStartStopStatusEnumType.accepted)

    @after(enums201.Action.request_start_transaction)
    def after_request_start_transaction(self, **payload: Any):
        self.record(enums201.Action.request_start_transaction, payload)

    @on(enums201.Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict], **_: Any):
        return result201.GetVariables(get_variable_result=[self.variable_result(d) for d in get_variable_data])

    @after(enums201.Action.get_variables)
    def after_get_variables(self, **payload: Any):
        self.record(enums201.Action.get_variables, payload)

    def variable_result(self, request: dict) -> types201.GetVariableResultType:
        # The component and variable come back as asked; the library turns
        # their snake_case keys back into camelCase.
        value = self.VARIABLES.get((request["component"]["name"], request["variable"]["name"]))
        return types201.GetVariableResultType(
            attribute_status=(
                enums201.GetVariableStatusEnumType.accepted
                if value is not None
                else enums201.GetVariableStatusEnumType.unknown_variable
            ),
            component=request["component"],
            variable=request["variable"],
            attribute_type=request.get("attribute_type"),
            attribute_value=value,
        )


@contextlib.asynccontextmanager
async def connected(cls: type, cp_id: str, subprotocol: str, port: int, checks: Checks):
    """Connect as charge point `cp_id` and run its message loop as a task."""
    url = f"ws://127.0.0.1:{port}/ocpp/{cp_id}"
    async with websockets.connect(url, subprotocols=[subprotocol], open_timeout=TIMEOUT, close_timeout=2) as ws:
        checks.equal(f"{cp_id} negotiated subprotocol", ws.subprotocol, subprotocol)
        cp = cls(cp_id, ws, response_timeout=TIMEOUT)
        loop = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await loop


async def send(checks: Checks, cp: Any, payload: Any) -> Any:
    """Send a CALL as `cp` and return the answer. A CallError, an answer
    that violates the schema, or no answer fails the check."""
    action = type(payload).__name__
    if isinstance(payload, call201.TransactionEvent):
        action += f" {payload.event_type}"
    name = f"{cp.id} {action} answered"
    try:
        result = await asyncio.wait_for(cp.call(payload, suppress=False), TIMEOUT)
    except (OCPPError, UnknownCallErrorCodeError) as e:
        checks.fail(name, repr(e))
    except TimeoutError:
        checks.fail(name, f"no answer within {TIMEOUT:.0f}s")
    checks.ok(name)
    return result


# ---------------------------------------------------------------- scenarios


async def setup_operator(cli: Cli) -> None:
    await cli.ok("charger", "add", "PY16")
    await cli.ok("charger", "add", "PY201")
    await cli.ok("token", "add", "TAG16", "--kind", "rfid")
    await cli.ok("token", "add", "TAG201", "--kind", "rfid")


def meter_value_16(timestamp: str) -> types16.MeterValue:
    return types16.MeterValue(
        timestamp=timestamp,
        sampled_value=[
            types16.SampledValue(
                value="2500",
                context=enums16.ReadingContext.sample_periodic,
                measurand=enums16.Measurand.energy_active_import_register,
                unit=enums16.UnitOfMeasure.wh,
            ),
            types16.SampledValue(
                value="7.2",
                context=enums16.ReadingContext.sample_periodic,
                measurand=enums16.Measurand.power_active_import,
                unit=enums16.UnitOfMeasure.kw,
            ),
        ],
    )


async def scenario_16(cli: Cli, port: int, checks: Checks) -> None:
    async with connected(ChargePoint16, "PY16", "ocpp1.6", port, checks) as cp:
        boot = await send(checks, cp, call16.BootNotification(charge_point_model="interop", charge_point_vendor="ocpp-py"))
        checks.equal("PY16 BootNotification status", boot.status, "Accepted")
        checks.check("PY16 BootNotification interval > 0", boot.interval > 0, f"got {boot.interval!r}")

        heartbeat = await send(checks, cp, call16.Heartbeat())
        checks.check("PY16 Heartbeat currentTime parses", is_timestamp(heartbeat.current_time), repr(heartbeat.current_time))

        await send(checks, cp, call16.StatusNotification(
            connector_id=1,
            error_code=enums16.ChargePointErrorCode.no_error,
            status=enums16.ChargePointStatus.available,
            timestamp=now_iso(),
        ))

        for tag, status in (("TAG16", "Accepted"), ("UNKNOWN1", "Invalid")):
            auth = await send(checks, cp, call16.Authorize(id_tag=tag))
            checks.equal(f"PY16 Authorize {tag} idTagInfo.status", auth.id_tag_info["status"], status)

        start = call16.StartTransaction(connector_id=1, id_tag="TAG16", meter_start=1000, timestamp=now_iso())
        started = await send(checks, cp, start)
        checks.equal("PY16 StartTransaction idTagInfo.status", started.id_tag_info["status"], "Accepted")
        tx_id = started.transaction_id
        # A charge point that lost the answer sends the identical message
        # again; the server must recognise the retry, not open a second session.
        retried = await send(checks, cp, start)
        checks.equal("PY16 StartTransaction retry transactionId", retried.transaction_id, tx_id)

        await send(checks, cp, call16.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[meter_value_16(now_iso())]))

        request, command = await cli.command_reaching(
            cp, enums16.Action.remote_stop_transaction, "session", "stop", str(tx_id)
        )
        checks.equal("PY16 RemoteStopTransaction transactionId", request.get("transaction_id"), tx_id)
        await send(checks, cp, call16.StopTransaction(
            transaction_id=tx_id, meter_stop=4000, timestamp=now_iso(), reason=enums16.Reason.remote
        ))
        cli.succeeded(await command)

        request, command = await cli.command_reaching(cp, enums16.Action.reset, "charger", "reset", "PY16")
        checks.equal("PY16 Reset type", request.get("type"), "Soft")
        cli.succeeded(await command)

        request, command = await cli.command_reaching(
            cp, enums16.Action.get_configuration, "charger", "config", "get", "PY16", "HeartbeatInterval", "--json"
        )
        checks.check(
            "PY16 GetConfiguration asks for HeartbeatInterval",
            "HeartbeatInterval" in (request.get("key") or []),
            f"got {request!r}",
        )
        output = cli.succeeded(await command)
        expect_json_mentions(checks, "`voltyard charger config get PY16`", output, "HeartbeatInterval", "300")

        session = pick(checks, f"session {tx_id}", await cli.list_json("session"), id=tx_id)
        expect_fields(
            checks, f"session {tx_id}", session,
            charger="PY16", evse=1, token="TAG16", status="completed", energy_wh=3000,
        )
        for key in ("started_at", "stopped_at"):
            checks.check(f"session {tx_id} {key} is a timestamp", is_timestamp(session.get(key)), repr(session.get(key)))

        charger = pick(checks, "charger PY16", await cli.list_json("charger"), id="PY16")
        expect_fields(checks, "charger PY16", charger, status="accepted", connected=True, protocol="ocpp1.6")


def transaction_event(
    event_type: str, seq_no: int, trigger_reason: str, energy_wh: int, context: str,
    stopped_reason: str | None = None, **fields: Any,
) -> call201.TransactionEvent:
    """A TransactionEvent of transaction TX_201 carrying one energy register
    reading; `fields` are further TransactionEvent fields (id_token, evse)."""
    timestamp = now_iso()
    return call201.TransactionEvent(
        event_type=event_type,
        timestamp=timestamp,
        trigger_reason=trigger_reason,
        seq_no=seq_no,
        transaction_info=types201.TransactionType(transaction_id=TX_201, stopped_reason=stopped_reason),
        meter_value=[
            types201.MeterValueType(
                timestamp=timestamp,
                sampled_value=[
                    types201.SampledValueType(
                        value=energy_wh,
                        context=context,
                        measurand=enums201.MeasurandEnumType.energy_active_import_register,
                        unit_of_measure=types201.UnitOfMeasureType(unit=enums201.StandardizedUnitsOfMeasureType.wh),
                    )
                ],
            )
        ],
        **fields,
    )


async def scenario_201(cli: Cli, port: int, checks: Checks) -> None:
    token = types201.IdTokenType(id_token="TAG201", type=enums201.IdTokenEnumType.iso14443)
    async with connected(ChargePoint201, "PY201", "ocpp2.0.1", port, checks) as cp:
        boot = await send(checks, cp, call201.BootNotification(
            charging_station=types201.ChargingStationType(vendor_name="ocpp-py", model="interop"),
            reason=enums201.BootReasonEnumType.power_up,
        ))
        checks.equal("PY201 BootNotification status", boot.status, "Accepted")

        await send(checks, cp, call201.StatusNotification(
            timestamp=now_iso(),
            connector_status=enums201.ConnectorStatusEnumType.available,
            evse_id=1,
            connector_id=1,
        ))

        auth = await send(checks, cp, call201.Authorize(id_token=token))
        checks.equal("PY201 Authorize TAG201 idTokenInfo.status", auth.id_token_info["status"], "Accepted")

        started = await send(checks, cp, transaction_event(
            enums201.TransactionEventEnumType.started, 0,
            enums201.TriggerReasonEnumType.authorized, 10000,
            enums201.ReadingContextEnumType.transaction_begin,
            id_token=token,
            evse=types201.EVSEType(id=1, connector_id=1),
        ))
        checks.equal(
            "PY201 TransactionEvent Started idTokenInfo.status", (started.id_token_info or {}).get("status"), "Accepted"
        )
        await send(checks, cp, transaction_event(
            enums201.TransactionEventEnumType.updated, 1,
            enums201.TriggerReasonEnumType.meter_value_periodic, 12000,
            enums201.ReadingContextEnumType.sample_periodic,
        ))

        active = pick(checks, "active session on PY201", await cli.list_json("session"), charger="PY201", status="active")
        session_id = active["id"]
        request, command = await cli.command_reaching(
            cp, enums201.Action.request_stop_transaction, "session", "stop", str(session_id)
        )
        checks.equal("PY201 RequestStopTransaction transactionId", request.get("transaction_id"), TX_201)
        await send(checks, cp, transaction_event(
            enums201.TransactionEventEnumType.ended, 2,
            enums201.TriggerReasonEnumType.remote_stop, 15000,
            enums201.ReadingContextEnumType.transaction_end,
            stopped_reason=enums201.ReasonEnumType.remote,
        ))
        cli.succeeded(await command)

        session = pick(checks, f"session {session_id}", await cli.list_json("session"), id=session_id)
        expect_fields(
            checks, f"session {session_id}", session,
            charger="PY201", evse=1, token="TAG201", status="completed", energy_wh=5000,
        )

        request, command = await cli.command_reaching(
            cp, enums201.Action.request_start_transaction,
            "session", "start", "PY201", "--token", "TAG201", "--evse", "1",
        )
        checks.equal("PY201 RequestStartTransaction idToken", (request.get("id_token") or {}).get("id_token"), "TAG201")
        checks.equal("PY201 RequestStartTransaction evseId", request.get("evse_id"), 1)
        cli.succeeded(await command)

        request, command = await cli.command_reaching(
            cp, enums201.Action.get_variables,
            "charger", "config", "get", "PY201", "OCPPCommCtrlr.HeartbeatInterval", "--json",
        )
        asked = [(d["component"]["name"], d["variable"]["name"]) for d in request.get("get_variable_data", [])]
        checks.check(
            "PY201 GetVariables asks for OCPPCommCtrlr.HeartbeatInterval",
            ("OCPPCommCtrlr", "HeartbeatInterval") in asked,
            f"got {asked!r}",
        )
        output = cli.succeeded(await command)
        expect_json_mentions(checks, "`voltyard charger config get PY201`", output, "120")

        charger = pick(checks, "charger PY201", await cli.list_json("charger"), id="PY201")
        expect_fields(checks, "charger PY201", charger, status="accepted", connected=True, protocol="ocpp2.0.1")


async def run_scenarios(cli: Cli, port: int, checks: Checks) -> None:
    await setup_operator(cli)
    await scenario_16(cli, port, checks)
    await scenario_201(cli, port, checks)


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, type=Path, help="path to the voltyard binary")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every check as it passes")
    args = parser.parse_args()
    if not args.bin.is_file():
        parser.error(f"--bin {args.bin}: no such file")
    args.bin = args.bin.resolve()
    return args


def run_main(scenarios, prefix: str = "voltyard-interop-") -> int:
    """Start a server on a fresh data dir, run `await scenarios(cli, port,
    checks, workdir)` against it, and report; every interop script ends here."""
    args = parse_args()
    checks = Checks(args.verbose)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    server = Server(args.bin, workdir)
    failure = None
    try:
        server.start()
        not_ready = server.wait_ready()
        checks.check("server ready (control.sock exists, port accepts TCP)", not_ready is None, str(not_ready))
        asyncio.run(scenarios(Cli(args.bin, server.data_dir, checks), server.port, checks, workdir))
    except CheckFailed as e:
        failure = f"FAILED {e}"
    except Exception:
        failure = f"ERROR after check {checks.last!r}:\n{traceback.format_exc()}"
    finally:
        server.stop()

    if failure is None:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"{checks.passed} passed, 0 failed")
        return 0
    print(failure)
    print(f"--- server log tail ({server.log_path}) ---")
    print(server.log_tail())
    print(f"--- data dir and log kept in {workdir}")
    print(f"{checks.passed} passed, 1 failed")
    return 1


def main() -> int:
    return run_main(lambda cli, port, checks, _workdir: run_scenarios(cli, port, checks))


if __name__ == "__main__":
    sys.exit(main())
