#!/usr/bin/env python3
"""Interop test: `voltyard simulate` against an independent CSMS built with
the PyPI `ocpp` library (2.1.0).

The `ocpp` library validates every CALL it receives (and every answer to the
CALLs it sends) against its own copy of the OCA JSON schemas, so this checks
the simulator's frames independently of voltyard's own schema copy.

The script
  1. serves `ocpp1.6` and `ocpp2.0.1` on ws://127.0.0.1:PORT/ocpp/{id}
     (a free port on loopback) with a small CSMS that answers everything the
     simulator sends and records it per charger;
  2. writes a scenario with two 1.6 and two 2.0.1 AC chargers (signed
     meters, 1 s meter interval, short visits) into a temporary directory and
     runs `voltyard simulate --duration 40s --json --seed 3` against it;
  3. while that runs, drives one charger of each version from the CSMS side
     (configuration, charging profile, triggers, unlock, remote stop and
     start, base report) and resets the other two near the end;
  4. checks the recorded traffic afterwards: boots, statuses, transactions
     and their sequence numbers, energy registers, OCMF-signed readings
     (signatures verified when the `cryptography` package is installed).

Usage:
    python3 tests/interop/sim_vs_ocpp_py.py --bin target/debug/voltyard [--verbose] [--keep]

Prints one `PASS name` / `FAIL name: detail` line per check, then
`N passed, M failed`; exits 1 when a check failed. Everything ends by itself
within about a minute; the only process started is the simulator, which is
killed by its PID if it overstays.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from ocpp.routing import on
from ocpp.v16 import ChargePoint as BaseChargePoint16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as BaseChargePoint201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.exceptions import ConnectionClosed

try:  # websockets ≥ 13
    from websockets.asyncio.server import serve
except ImportError:  # websockets 12: the legacy server has the same call
    from websockets import serve

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    HAVE_CRYPTOGRAPHY = True
except ImportError:  # the signature checks are skipped, the format checks stay
    HAVE_CRYPTOGRAPHY = False

SEED = 3
SIM_DURATION_S = 40
# The simulator stops by itself after SIM_DURATION_S (plus up to 5 s to close
# its connections); past this it is killed.
SIM_TIMEOUT_S = 70
CALL_TIMEOUT_S = 10
# The remote starts wait for a connector to become free until this long after
# the simulator started; the resets happen at RESET_AT_S.
REMOTE_START_BY_S = 37
RESET_AT_S = 25
BOOT_INTERVAL_S = 30
PROFILE_LIMIT_A = 8

# The chargers of the scenario below: ids are {prefix}-{01..count}.
CP16_DRIVEN = "PY16-01"
CP16_RESET = "PY16-02"
CP201_DRIVEN = "PY201-01"
CP201_RESET = "PY201-02"
CP16 = (CP16_DRIVEN, CP16_RESET)
CP201 = (CP201_DRIVEN, CP201_RESET)

SCENARIO = """\
# Written by tests/interop/sim_vs_ocpp_py.py: two 1.6 and two 2.0.1 AC
# chargers with signed meters and short visits, so that sessions start, send
# readings every second and end within the run.
[site]
id = "interop"
name = "ocpp-py interop"

[[chargers]]
prefix = "PY16"
count = 2
protocol = "1.6"
supply = "ac"
phases = 3
max_current = 16
meter_interval_s = 1
limit_delay_s = 1
signed_meter = true

[[chargers]]
prefix = "PY201"
count = 2
protocol = "2.0.1"
supply = "ac"
phases = 3
max_current = 16
meter_interval_s = 1
limit_delay_s = 1
signed_meter = true

[[tokens]]
prefix = "GOOD"
count = 10

[[cars]]
name = "Interop car"
battery_kwh = 50
ac_max_current = 16
ac_phases = 3

[arrivals]
first_within_s = 1
gap_s = [1, 2]
dwell_s = [25, 30]
soc_percent = [20, 30]
unknown_token_percent = 0
"""

ENERGY = "Energy.Active.Import.Register"
# Registers are compared with this slack: 1.6 meterStart / meterStop are
# whole Wh while the sampled values carry the fraction.
REGISTER_SLACK_WH = 1.0


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def token_status(token: str | None) -> str:
    return "Accepted" if (token or "").startswith("GOOD") else "Invalid"


# ---------------------------------------------------------------- checks


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, ok: Any, detail: Any = "") -> bool:
        ok = bool(ok)
        if ok:
            self.passed += 1
            print(f"PASS {name}", flush=True)
        else:
            self.failed += 1
            text = str(detail) if detail not in (None, "") else "condition is false"
            if len(text) > 600:
                text = text[:600] + "…"
            print(f"FAIL {name}: {text}", flush=True)
        return ok


# ---------------------------------------------------------------- the CSMS


@dataclass
class Msg:
    """One CALL a charger sent, with what the CSMS answered."""

    at: float
    action: str
    payload: dict
    answer: dict | None
    # The CALLERROR the CSMS sent instead of an answer (the ocpp library
    # refuses payloads that break its schemas).
    error: str | None
    conn: int


class Recording:
    """Mixin: records every CALL received, after its answer went out, so a
    waiter that sees the record knows the charger has the answer too."""

    def __init__(self, cp_id: str, connection: Any, csms: "Csms", conn_no: int):
        super().__init__(cp_id, connection, response_timeout=CALL_TIMEOUT_S)
        self.csms = csms
        self.conn_no = conn_no
        self._answers: dict[str, tuple[str, Any]] = {}

    async def _send(self, message: str) -> None:
        with contextlib.suppress(ValueError, TypeError, IndexError, KeyError):
            frame = json.loads(message)
            if frame[0] == 3:
                self._answers[frame[1]] = ("result", frame[2])
            elif frame[0] == 4:
                self._answers[frame[1]] = ("error", f"{frame[2]}: {frame[3]} {json.dumps(frame[4])}")
        await super()._send(message)

    async def route_message(self, raw_msg: str) -> None:
        try:
            frame = json.loads(raw_msg)
        except ValueError:
            frame = None
        is_call = isinstance(frame, list) and frame[:1] == [2]
        try:
            await super().route_message(raw_msg)
        finally:
            if is_call:
                if len(frame) != 4 or not isinstance(frame[3], dict):
                    self.csms.record(self.id, Msg(time.monotonic(), str(frame[2:3]), {}, None,
                                                  f"malformed CALL frame {raw_msg[:200]}", self.conn_no))
                else:
                    kind, body = self._answers.pop(frame[1], (None, None))
                    self.csms.record(self.id, Msg(
                        time.monotonic(), frame[2], frame[3],
                        body if kind == "result" else None,
                        body if kind == "error" else (None if kind else "no answer was sent"),
                        self.conn_no,
                    ))
        if frame is None:
            self.csms.record(self.id, Msg(time.monotonic(), "?", {}, None,
                                          f"unparseable frame {raw_msg[:200]!r}", self.conn_no))


class Csms16(Recording, BaseChargePoint16):
    @on("BootNotification")
    def on_boot_notification(self, **_: Any):
        return result16.BootNotification(current_time=now_iso(), interval=BOOT_INTERVAL_S, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any):
        return result16.Heartbeat(current_time=now_iso())

    @on("StatusNotification")
    def on_status_notification(self, **_: Any):
        return result16.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag: str, **_: Any):
        return result16.Authorize(id_tag_info={"status": token_status(id_tag)})

    @on("StartTransaction")
    def on_start_transaction(self, id_tag: str, **_: Any):
        return result16.StartTransaction(
            transaction_id=self.csms.new_transaction_id(), id_tag_info={"status": token_status(id_tag)}
        )

    @on("StopTransaction")
    def on_stop_transaction(self, id_tag: str | None = None, **_: Any):
        return result16.StopTransaction(id_tag_info={"status": token_status(id_tag)} if id_tag else None)

    @on("MeterValues")
    def on_meter_values(self, **_: Any):
        return result16.MeterValues()

    @on("DiagnosticsStatusNotification")
    def on_diagnostics_status_notification(self, **_: Any):
        return result16.DiagnosticsStatusNotification()

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, **_: Any):
        return result16.FirmwareStatusNotification()


class Csms201(Recording, BaseChargePoint201):
    @on("BootNotification")
    def on_boot_notification(self, **_: Any):
        return result201.BootNotification(current_time=now_iso(), interval=BOOT_INTERVAL_S, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self, **_: Any):
        return result201.Heartbeat(current_time=now_iso())

    @on("StatusNotification")
    def on_status_notification(self, **_: Any):
        return result201.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token: dict, **_: Any):
        return result201.Authorize(id_token_info={"status": token_status(id_token.get("id_token"))})

    @on("TransactionEvent")
    def on_transaction_event(self, id_token: dict | None = None, **_: Any):
        info = {"status": token_status(id_token.get("id_token"))} if id_token else None
        return result201.TransactionEvent(id_token_info=info)

    @on("MeterValues")
    def on_meter_values(self, **_: Any):
        return result201.MeterValues()

    @on("NotifyReport")
    def on_notify_report(self, **_: Any):
        return result201.NotifyReport()

    @on("FirmwareStatusNotification")
    def on_firmware_status_notification(self, **_: Any):
        return result201.FirmwareStatusNotification()

    @on("LogStatusNotification")
    def on_log_status_notification(self, **_: Any):
        return result201.LogStatusNotification()


class Csms:
    def __init__(self, checks: Checks, verbose: bool):
        self.checks = checks
        self.verbose = verbose
        self.msgs: dict[str, list[Msg]] = defaultdict(list)
        self.cps: dict[str, Any] = {}
        self.conns: dict[str, int] = defaultdict(int)
        self.subprotocols: dict[str, str] = {}
        self.refused: list[str] = []
        self.our_calls: list[dict] = []
        self.next_tx = 7000
        self.t0 = time.monotonic()
        self.sim_done = asyncio.Event()

    def new_transaction_id(self) -> int:
        self.next_tx += 1
        return self.next_tx

    def record(self, cp_id: str, msg: Msg) -> None:
        self.msgs[cp_id].append(msg)
        if self.verbose:
            print(f"  {msg.at - self.t0:6.2f}s {cp_id} → {msg.action} {json.dumps(msg.payload)[:160]}", flush=True)

    async def handler(self, ws: Any, *_: Any) -> None:
        request = getattr(ws, "request", None)
        path = request.path if request is not None else ws.path  # legacy websockets
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "ocpp" or not parts[1]:
            self.refused.append(f"path {path!r}")
            await ws.close(1008, "expected /ocpp/{id}")
            return
        cp_id = parts[1]
        cls = {"ocpp1.6": Csms16, "ocpp2.0.1": Csms201}.get(ws.subprotocol)
        if cls is None:
            self.refused.append(f"{cp_id}: subprotocol {ws.subprotocol!r}")
            await ws.close(1002, "no OCPP subprotocol")
            return
        self.conns[cp_id] += 1
        self.subprotocols[cp_id] = ws.subprotocol
        cp = cls(cp_id, ws, self, self.conns[cp_id])
        self.cps[cp_id] = cp
        with contextlib.suppress(ConnectionClosed):
            await cp.start()

    # ---- driving a charger ------------------------------------------------

    async def call(self, cp_id: str, payload: Any) -> tuple[Any, str | None]:
        """Send a CALL to the charger's current connection; (answer, None)
        or (None, why not). A CALLERROR, an answer that breaks the schema or
        no answer within CALL_TIMEOUT_S is a why-not."""
        cp = self.cps.get(cp_id)
        entry = {"at": round(time.monotonic() - self.t0, 2), "to": cp_id, "action": type(payload).__name__}
        self.our_calls.append(entry)
        if cp is None:
            entry["error"] = "not connected"
            return None, f"{cp_id} is not connected"
        try:
            result = await asyncio.wait_for(cp.call(payload, suppress=False), CALL_TIMEOUT_S + 1)
        except Exception as e:  # CallError, schema violation, timeout, closed socket
            entry["error"] = f"{type(e).__name__}: {e}"
            return None, entry["error"]
        entry["answer"] = repr(result)
        return result, None

    def index(self, cp_id: str) -> int:
        return len(self.msgs[cp_id])

    async def wait_msg(
        self, cp_id: str, pred: Callable[[Msg], bool], after: int = 0, timeout: float = 5.0
    ) -> tuple[int, Msg] | None:
        """The first message from index `after` on that matches, waiting up
        to `timeout` s (less when the simulator has ended)."""
        end = time.monotonic() + timeout
        seen = after
        while True:
            msgs = self.msgs[cp_id]
            for i in range(seen, len(msgs)):
                with contextlib.suppress(Exception):
                    if pred(msgs[i]):
                        return i, msgs[i]
            seen = len(msgs)
            if time.monotonic() >= end or self.sim_done.is_set():
                return None
            await asyncio.sleep(0.05)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


# ---------------------------------------------------------------- reading messages


def samples(meter_values: Any) -> list[dict]:
    out = []
    for mv in meter_values or []:
        for sv in mv.get("sampledValue") or []:
            out.append(sv)
    return out


def measurand(sv: dict) -> str:
    return sv.get("measurand") or ENERGY


def number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def values_of(svs: list[dict], name: str, signed: bool = False) -> list[float]:
    """Numbers of measurand `name` (1.6 SignedData rows are left out unless
    `signed`)."""
    out = []
    for sv in svs:
        if measurand(sv) != name or (sv.get("format") == "SignedData") != signed:
            continue
        v = number(sv.get("value"))
        if v is None:
            continue
        unit = sv.get("unit") or (sv.get("unitOfMeasure") or {}).get("unit")
        if name == ENERGY and unit == "kWh":
            v *= 1000
        out.append(v)
    return out


def phase_currents(svs: list[dict]) -> list[float]:
    return values_of(svs, "Current.Import")


def meter_of(m: Msg) -> list[dict]:
    if m.action == "MeterValues":
        return samples(m.payload.get("meterValue"))
    if m.action == "TransactionEvent":
        return samples(m.payload.get("meterValue"))
    if m.action == "StopTransaction":
        return samples(m.payload.get("transactionData"))
    return []


def tx201(m: Msg) -> str | None:
    return (m.payload.get("transactionInfo") or {}).get("transactionId") if m.action == "TransactionEvent" else None


def describe(m: Msg) -> str:
    """An action with what tells its kind: `TransactionEvent Updated/Trigger`."""
    if m.action == "TransactionEvent":
        return f"TransactionEvent {m.payload.get('eventType')}/{m.payload.get('triggerReason')}"
    contexts = sorted({sv.get("context") for sv in meter_of(m) if sv.get("context")})
    return f"{m.action} {'/'.join(contexts)}" if contexts else m.action


def split_ocmf(text: str) -> tuple[str, dict, dict]:
    """(payload text, payload, signature) of `OCMF|{payload}|{signature}`."""
    if not text.startswith("OCMF|"):
        raise ValueError(f"does not start with 'OCMF|': {text[:40]!r}")
    first, last = text.index("|"), text.rindex("|")
    if last <= first:
        raise ValueError("no signature section")
    payload = text[first + 1:last]
    return payload, json.loads(payload), json.loads(text[last + 1:])


def verify_ocmf(text: str, spki_der: bytes) -> str | None:
    """None when the OCMF record's signature verifies with the key, else why."""
    try:
        payload, _, sig = split_ocmf(text)
        key = load_der_public_key(spki_der)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            return f"the key is not a P-256 key: {key!r}"
        key.verify(bytes.fromhex(sig["SD"]), payload.encode(), ec.ECDSA(hashes.SHA256()))
        return None
    except InvalidSignature:
        return "the signature does not verify"
    except Exception as e:
        return f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------- CSMS-side scripts


async def expect_status(csms: Csms, name: str, cp_id: str, payload: Any, want: str) -> Any:
    """Send a CALL; check that it is answered with status `want`."""
    result, err = await csms.call(cp_id, payload)
    got = getattr(result, "status", None)
    csms.checks.check(f"{cp_id}: {name} → {want}", result is not None and got == want,
                      err or f"answered {got!r} ({result!r})")
    return result


async def trigger_and_wait(
    csms: Csms, cp_id: str, what: str, payload: Any, pred: Callable[[Msg], bool], arrives: str
) -> None:
    before = csms.index(cp_id)
    result = await expect_status(csms, f"TriggerMessage {what}", cp_id, payload, "Accepted")
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(cp_id, pred, after=before, timeout=5)
    seen = [describe(m) for m in csms.msgs[cp_id][before:]]
    csms.checks.check(f"{cp_id}: TriggerMessage {what} → {arrives} arrives", got,
                      f"within 5 s the charger sent {seen}")


async def expect_drawing(csms: Csms, cp_id: str, action: str) -> None:
    """Before the profile: a reading where the car draws more than the
    limit to come, so that the limit shows."""
    got = await csms.wait_msg(
        cp_id, lambda m: m.action == action and max(phase_currents(meter_of(m)) or [0]) > PROFILE_LIMIT_A, timeout=5
    )
    currents = [phase_currents(meter_of(m)) for m in csms.msgs[cp_id] if m.action == action]
    csms.checks.check(f"{cp_id}: the car draws more than {PROFILE_LIMIT_A} A before the profile (so the limit shows)",
                      got, f"Current.Import in the readings so far: {currents}")


async def check_limit(csms: Csms, cp_id: str, before: int, action: str) -> None:
    """After a TxDefaultProfile of PROFILE_LIMIT_A: a reading offering it
    within 8 s, and the car drawing at most that."""
    checks = csms.checks

    def offered_limit(m: Msg) -> bool:
        return m.action == action and PROFILE_LIMIT_A in values_of(meter_of(m), "Current.Offered")

    got = await csms.wait_msg(cp_id, offered_limit, after=before, timeout=8)
    offered = [values_of(meter_of(m), "Current.Offered") for m in csms.msgs[cp_id][before:] if m.action == action]
    if not checks.check(f"{cp_id}: a reading with Current.Offered = {PROFILE_LIMIT_A} A within 8 s of the profile",
                        got, f"Current.Offered in the readings since: {offered}"):
        return
    currents = phase_currents(meter_of(got[1]))
    checks.check(f"{cp_id}: Current.Import ≤ {PROFILE_LIMIT_A} A on every phase once the limit is offered",
                 len(currents) == 3 and all(c <= PROFILE_LIMIT_A for c in currents) and max(currents) > 0,
                 f"Current.Import per phase: {currents}")


async def drive_16(csms: Csms, cp_id: str, keys16: dict[str, bytes]) -> None:
    checks = csms.checks
    got = await csms.wait_msg(cp_id, lambda m: m.action == "StartTransaction" and m.answer, timeout=20)
    if not checks.check(f"{cp_id}: a transaction starts", got,
                        "no StartTransaction within 20 s (or before the simulator ended)"):
        return
    start_at, start = got
    tx_id = start.answer["transactionId"]
    conn = start.payload["connectorId"]

    wanted = ["HeartbeatInterval", "MeterValueSampleInterval", "NumberOfConnectors", "MeterPublicKey[1]", "NoSuchKey"]
    result, err = await csms.call(cp_id, call16.GetConfiguration(key=wanted))
    if checks.check(f"{cp_id}: GetConfiguration answered", result is not None, err):
        entries = {e.get("key"): e for e in result.configuration_key or []}

        def value(k: str) -> Any:
            return (entries.get(k) or {}).get("value")

        checks.check(f"{cp_id}: GetConfiguration HeartbeatInterval = {BOOT_INTERVAL_S} (the boot interval)",
                     value("HeartbeatInterval") == str(BOOT_INTERVAL_S), f"got {entries.get('HeartbeatInterval')}")
        checks.check(f"{cp_id}: GetConfiguration MeterValueSampleInterval = 1 (the scenario's)",
                     value("MeterValueSampleInterval") == "1", f"got {entries.get('MeterValueSampleInterval')}")
        nc = entries.get("NumberOfConnectors") or {}
        checks.check(f"{cp_id}: GetConfiguration NumberOfConnectors = 1, read-only",
                     nc.get("value") == "1" and nc.get("readonly") is True, f"got {nc}")
        checks.check(f"{cp_id}: GetConfiguration unknownKey lists NoSuchKey",
                     "NoSuchKey" in (result.unknown_key or []), f"unknownKey {result.unknown_key!r}")
        key = value("MeterPublicKey[1]") or ""
        prefix = "oca:base16:asn1:"
        ok = checks.check(f"{cp_id}: GetConfiguration MeterPublicKey[1] is {prefix}<hex>",
                          key.startswith(prefix), f"got {key[:60]!r}")
        if ok:
            with contextlib.suppress(ValueError):
                keys16[cp_id] = bytes.fromhex(key[len(prefix):])

    result, err = await csms.call(cp_id, call16.GetConfiguration())
    checks.check(f"{cp_id}: GetConfiguration of every key answered",
                 result is not None and len(result.configuration_key or []) >= 10,
                 err or f"{len(result.configuration_key or [])} keys")

    for key, value, want in (
        ("MeterValueSampleInterval", "2", "Accepted"),
        ("NumberOfConnectors", "3", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
    ):
        await expect_status(csms, f"ChangeConfiguration {key}={value}", cp_id,
                            call16.ChangeConfiguration(key=key, value=value), want)
    result, err = await csms.call(cp_id, call16.GetConfiguration(key=["MeterValueSampleInterval"]))
    got_value = ((result.configuration_key or [{}])[0].get("value") if result else None)
    checks.check(f"{cp_id}: MeterValueSampleInterval reads 2 after the change", got_value == "2",
                 err or f"got {got_value!r}")

    await expect_drawing(csms, cp_id, "MeterValues")
    before = csms.index(cp_id)
    profile = {
        "charging_profile_id": 161,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Relative",
        "charging_schedule": {
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": float(PROFILE_LIMIT_A)}],
        },
    }
    result = await expect_status(csms, f"SetChargingProfile TxDefaultProfile {PROFILE_LIMIT_A} A on connector 0",
                                 cp_id, call16.SetChargingProfile(connector_id=0, cs_charging_profiles=profile),
                                 "Accepted")
    if result is not None and result.status == "Accepted":
        await check_limit(csms, cp_id, before, "MeterValues")

    await trigger_and_wait(
        csms, cp_id, "StatusNotification",
        call16.TriggerMessage(requested_message="StatusNotification", connector_id=conn),
        lambda m: m.action == "StatusNotification" and m.payload.get("connectorId") == conn,
        f"StatusNotification of connector {conn}",
    )
    await trigger_and_wait(
        csms, cp_id, "MeterValues", call16.TriggerMessage(requested_message="MeterValues", connector_id=conn),
        lambda m: m.action == "MeterValues" and any(sv.get("context") == "Trigger" for sv in meter_of(m)),
        "MeterValues with context Trigger",
    )
    await expect_status(csms, "UnlockConnector of unknown connector 9", cp_id,
                        call16.UnlockConnector(connector_id=9), "NotSupported")
    await expect_status(csms, "RemoteStopTransaction of unknown transaction", cp_id,
                        call16.RemoteStopTransaction(transaction_id=999999), "Rejected")

    before = csms.index(cp_id)
    result = await expect_status(csms, f"RemoteStopTransaction {tx_id}", cp_id,
                                 call16.RemoteStopTransaction(transaction_id=tx_id), "Accepted")
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(
        cp_id, lambda m: m.action == "StopTransaction" and m.payload.get("transactionId") == tx_id,
        after=before, timeout=5,
    )
    if checks.check(f"{cp_id}: StopTransaction {tx_id} follows the remote stop", got, "none within 5 s"):
        checks.check(f"{cp_id}: StopTransaction {tx_id} reason Remote", got[1].payload.get("reason") == "Remote",
                     f"reason {got[1].payload.get('reason')!r}")
    stop_at = got[0] if got else before

    # The car stays plugged in until its visit ends; once the connector is
    # free (and before the next car comes), start remotely.
    free = await csms.wait_msg(
        cp_id,
        lambda m: m.action == "StatusNotification" and m.payload.get("connectorId") == conn
        and m.payload.get("status") == "Available",
        after=stop_at, timeout=max(1.0, REMOTE_START_BY_S - csms.elapsed()),
    )
    if not checks.check(f"{cp_id}: connector {conn} becomes Available after the session", free,
                        f"not within {REMOTE_START_BY_S} s of the start"):
        return
    before = csms.index(cp_id)
    token = "GOODREMOTE16"
    result = await expect_status(csms, f"RemoteStartTransaction on free connector {conn}", cp_id,
                                 call16.RemoteStartTransaction(id_tag=token, connector_id=conn), "Accepted")
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(cp_id, lambda m: m.action == "StartTransaction" and m.payload.get("idTag") == token,
                              after=before, timeout=5)
    if checks.check(f"{cp_id}: StartTransaction with {token} follows the remote start", got,
                    f"sent since: {[describe(m) for m in csms.msgs[cp_id][before:]]}"):
        checks.check(f"{cp_id}: the remote start is on connector {conn}", got[1].payload.get("connectorId") == conn,
                     f"connectorId {got[1].payload.get('connectorId')!r}")


async def drive_201(csms: Csms, cp_id: str) -> None:
    checks = csms.checks
    got = await csms.wait_msg(
        cp_id, lambda m: m.action == "TransactionEvent" and m.payload.get("eventType") == "Started", timeout=20
    )
    if not checks.check(f"{cp_id}: a transaction starts", got,
                        "no TransactionEvent Started within 20 s (or before the simulator ended)"):
        return
    _, started = got
    tx_id = tx201(started)
    evse = (started.payload.get("evse") or {}).get("id", 1)

    def variables(*pairs: tuple[str, str]) -> list[dict]:
        return [{"component": {"name": c}, "variable": {"name": v}} for c, v in pairs]

    def by_name(results: list[dict]) -> dict[tuple[str, str], dict]:
        return {(r["component"]["name"], r["variable"]["name"]): r for r in results or []}

    result, err = await csms.call(cp_id, call201.GetVariables(get_variable_data=variables(
        ("OCPPCommCtrlr", "HeartbeatInterval"),
        ("SampledDataCtrlr", "TxUpdatedInterval"),
        ("OCPPCommCtrlr", "NoSuchVariable"),
        ("NoSuchCtrlr", "NoSuchVariable"),
    )))
    if checks.check(f"{cp_id}: GetVariables answered", result is not None, err):
        got_vars = by_name(result.get_variable_result)
        for (comp, var), (status, value) in {
            ("OCPPCommCtrlr", "HeartbeatInterval"): ("Accepted", str(BOOT_INTERVAL_S)),
            ("SampledDataCtrlr", "TxUpdatedInterval"): ("Accepted", "1"),
            ("OCPPCommCtrlr", "NoSuchVariable"): ("UnknownVariable", None),
            ("NoSuchCtrlr", "NoSuchVariable"): ("UnknownComponent", None),
        }.items():
            r = got_vars.get((comp, var)) or {}
            checks.check(f"{cp_id}: GetVariables {comp}.{var} → {status}" + (f" {value!r}" if value else ""),
                         r.get("attribute_status") == status and (value is None or r.get("attribute_value") == value),
                         f"got {r}")

    result, err = await csms.call(cp_id, call201.SetVariables(set_variable_data=[
        {"attribute_value": "2", "component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}},
        {"attribute_value": "99", "component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "Entries"}},
    ]))
    if checks.check(f"{cp_id}: SetVariables answered", result is not None, err):
        got_vars = by_name(result.set_variable_result)
        for (comp, var), status in {
            ("SampledDataCtrlr", "TxUpdatedInterval"): "Accepted",
            ("SmartChargingCtrlr", "Entries"): "Rejected",
        }.items():
            r = got_vars.get((comp, var)) or {}
            checks.check(f"{cp_id}: SetVariables {comp}.{var} → {status}", r.get("attribute_status") == status,
                         f"got {r}")
    result, err = await csms.call(cp_id, call201.GetVariables(
        get_variable_data=variables(("SampledDataCtrlr", "TxUpdatedInterval"))))
    r = (result.get_variable_result or [{}])[0] if result else {}
    checks.check(f"{cp_id}: TxUpdatedInterval reads 2 after SetVariables", r.get("attribute_value") == "2",
                 err or f"got {r}")

    await expect_drawing(csms, cp_id, "TransactionEvent")
    before = csms.index(cp_id)
    start = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="seconds").replace("+00:00", "Z")
    profile = {
        "id": 201,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [{
            "id": 1,
            "start_schedule": start,
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": PROFILE_LIMIT_A}],
        }],
    }
    result = await expect_status(csms, f"SetChargingProfile TxDefaultProfile {PROFILE_LIMIT_A} A on EVSE 0", cp_id,
                                 call201.SetChargingProfile(evse_id=0, charging_profile=profile), "Accepted")
    if result is not None and result.status == "Accepted":
        await check_limit(csms, cp_id, before, "TransactionEvent")

    before = csms.index(cp_id)
    result = await expect_status(csms, "GetBaseReport FullInventory", cp_id,
                                 call201.GetBaseReport(request_id=77, report_base="FullInventory"), "Accepted")
    if result is not None and result.status == "Accepted":
        got = await csms.wait_msg(cp_id, lambda m: m.action == "NotifyReport" and m.payload.get("requestId") == 77,
                                  after=before, timeout=5)
        if checks.check(f"{cp_id}: NotifyReport with requestId 77 follows", got, "none within 5 s"):
            report = {(d["component"]["name"], d["variable"]["name"]): d
                      for d in got[1].payload.get("reportData") or []}
            hb = report.get(("OCPPCommCtrlr", "HeartbeatInterval")) or {}
            hb_value = [a.get("value") for a in hb.get("variableAttribute") or []]
            checks.check(f"{cp_id}: NotifyReport has OCPPCommCtrlr.HeartbeatInterval = {BOOT_INTERVAL_S}",
                         str(BOOT_INTERVAL_S) in hb_value, f"got {hb!r}")

    await trigger_and_wait(
        csms, cp_id, "StatusNotification",
        call201.TriggerMessage(requested_message="StatusNotification", evse={"id": evse, "connector_id": 1}),
        lambda m: m.action == "StatusNotification" and m.payload.get("evseId") == evse,
        f"StatusNotification of EVSE {evse}",
    )
    # OCPP 2.0.1 F06.FR.06: a triggered MeterValues is a MeterValuesRequest
    # (context Trigger), also while a transaction runs; F06.FR.07: a
    # triggered TransactionEvent is an Updated event with triggerReason Trigger.
    await trigger_and_wait(
        csms, cp_id, "MeterValues",
        call201.TriggerMessage(requested_message="MeterValues", evse={"id": evse}),
        lambda m: m.action == "MeterValues" and any(sv.get("context") == "Trigger" for sv in meter_of(m)),
        "MeterValues (context Trigger)",
    )
    await trigger_and_wait(
        csms, cp_id, "TransactionEvent",
        call201.TriggerMessage(requested_message="TransactionEvent", evse={"id": evse}),
        lambda m: m.action == "TransactionEvent" and m.payload.get("triggerReason") == "Trigger"
        and m.payload.get("eventType") == "Updated" and tx201(m) == tx_id,
        "TransactionEvent Updated (triggerReason Trigger)",
    )
    await expect_status(csms, "UnlockConnector of unknown EVSE 9", cp_id,
                        call201.UnlockConnector(evse_id=9, connector_id=1), "UnknownConnector")
    await expect_status(csms, "RequestStopTransaction of unknown transaction", cp_id,
                        call201.RequestStopTransaction(transaction_id="no-such-transaction"), "Rejected")

    before = csms.index(cp_id)
    result = await expect_status(csms, f"RequestStopTransaction {tx_id}", cp_id,
                                 call201.RequestStopTransaction(transaction_id=tx_id), "Accepted")
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(
        cp_id, lambda m: m.action == "TransactionEvent" and m.payload.get("eventType") == "Ended" and tx201(m) == tx_id,
        after=before, timeout=5,
    )
    if checks.check(f"{cp_id}: TransactionEvent Ended follows the remote stop", got, "none within 5 s"):
        info = got[1].payload.get("transactionInfo") or {}
        checks.check(f"{cp_id}: Ended stoppedReason Remote", info.get("stoppedReason") == "Remote",
                     f"stoppedReason {info.get('stoppedReason')!r}")
        checks.check(f"{cp_id}: Ended triggerReason RemoteStop", got[1].payload.get("triggerReason") == "RemoteStop",
                     f"triggerReason {got[1].payload.get('triggerReason')!r}")
    end_at = got[0] if got else before

    free = await csms.wait_msg(
        cp_id,
        lambda m: m.action == "StatusNotification" and m.payload.get("evseId") == evse
        and m.payload.get("connectorStatus") == "Available",
        after=end_at, timeout=max(1.0, REMOTE_START_BY_S - csms.elapsed()),
    )
    if not checks.check(f"{cp_id}: EVSE {evse} becomes Available after the session", free,
                        f"not within {REMOTE_START_BY_S} s of the start"):
        return
    before = csms.index(cp_id)
    token = "GOODREMOTE201"
    result = await expect_status(
        csms, f"RequestStartTransaction on free EVSE {evse}", cp_id,
        call201.RequestStartTransaction(id_token={"id_token": token, "type": "ISO14443"}, remote_start_id=4242,
                                        evse_id=evse),
        "Accepted",
    )
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(
        cp_id, lambda m: m.action == "TransactionEvent" and m.payload.get("eventType") == "Started"
        and (m.payload.get("idToken") or {}).get("idToken") == token,
        after=before, timeout=5,
    )
    if checks.check(f"{cp_id}: TransactionEvent Started with {token} follows the remote start", got,
                    f"sent since: {[describe(m) for m in csms.msgs[cp_id][before:]]}"):
        p = got[1].payload
        checks.check(f"{cp_id}: the remote start's event has remoteStartId 4242, triggerReason RemoteStart",
                     (p.get("transactionInfo") or {}).get("remoteStartId") == 4242
                     and p.get("triggerReason") == "RemoteStart",
                     f"transactionInfo {p.get('transactionInfo')}, triggerReason {p.get('triggerReason')!r}")
        if result.transaction_id is not None:
            checks.check(f"{cp_id}: RequestStartTransaction's transactionId is the started one",
                         result.transaction_id == tx201(got[1]), f"{result.transaction_id!r} vs {tx201(got[1])!r}")


def open_transaction_16(csms: Csms, cp_id: str) -> int | None:
    """The transactionId of the 1.6 charger's running transaction, if any."""
    started = [m.answer["transactionId"] for m in csms.msgs[cp_id] if m.action == "StartTransaction" and m.answer]
    stopped = {m.payload.get("transactionId") for m in csms.msgs[cp_id] if m.action == "StopTransaction"}
    running = [t for t in started if t not in stopped]
    return running[-1] if running else None


def open_transaction_201(csms: Csms, cp_id: str) -> str | None:
    started = [tx201(m) for m in csms.msgs[cp_id]
               if m.action == "TransactionEvent" and m.payload.get("eventType") == "Started"]
    ended = {tx201(m) for m in csms.msgs[cp_id]
             if m.action == "TransactionEvent" and m.payload.get("eventType") == "Ended"}
    running = [t for t in started if t not in ended]
    return running[-1] if running else None


async def reset_16(csms: Csms, cp_id: str) -> None:
    checks = csms.checks
    running = open_transaction_16(csms, cp_id)
    before = csms.index(cp_id)
    result = await expect_status(csms, "Reset Soft", cp_id, call16.Reset(type="Soft"), "Accepted")
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(cp_id, lambda m: m.action == "BootNotification", after=before, timeout=12)
    if not checks.check(f"{cp_id}: boots again after the reset", got, "no BootNotification within 12 s"):
        return
    checks.check(f"{cp_id}: the new boot comes over a new connection", got[1].conn > csms.msgs[cp_id][before - 1].conn,
                 f"connection #{got[1].conn}")
    if running is not None:
        stop = [m for m in csms.msgs[cp_id][before:got[0]]
                if m.action == "StopTransaction" and m.payload.get("transactionId") == running]
        checks.check(f"{cp_id}: the running transaction {running} is stopped with reason SoftReset before the reboot",
                     stop and stop[0].payload.get("reason") == "SoftReset",
                     f"StopTransaction before the boot: {[m.payload for m in stop]}")


async def reset_201(csms: Csms, cp_id: str) -> None:
    checks = csms.checks
    running = open_transaction_201(csms, cp_id)
    before = csms.index(cp_id)
    result = await expect_status(csms, "Reset Immediate", cp_id, call201.Reset(type="Immediate"), "Accepted")
    if result is None or result.status != "Accepted":
        return
    got = await csms.wait_msg(cp_id, lambda m: m.action == "BootNotification", after=before, timeout=12)
    if not checks.check(f"{cp_id}: boots again after the reset", got, "no BootNotification within 12 s"):
        return
    checks.check(f"{cp_id}: the new boot has reason RemoteReset", got[1].payload.get("reason") == "RemoteReset",
                 f"reason {got[1].payload.get('reason')!r}")
    checks.check(f"{cp_id}: the new boot comes over a new connection", got[1].conn > csms.msgs[cp_id][before - 1].conn,
                 f"connection #{got[1].conn}")
    if running is not None:
        ended = [m for m in csms.msgs[cp_id][before:got[0]]
                 if m.action == "TransactionEvent" and m.payload.get("eventType") == "Ended" and tx201(m) == running]
        info = (ended[0].payload.get("transactionInfo") or {}) if ended else {}
        checks.check(f"{cp_id}: the running transaction is Ended with stoppedReason ImmediateReset before the reboot",
                     ended and info.get("stoppedReason") == "ImmediateReset"
                     and ended[0].payload.get("triggerReason") == "ResetCommand",
                     f"Ended events before the boot: {[m.payload for m in ended]}")


async def drive_others(csms: Csms, keys16: dict[str, bytes]) -> None:
    """The two chargers that get reset: first the triggers of the messages
    the driven ones do not send, then the resets near the end of the run."""
    checks = csms.checks
    for cp_id in (CP16_RESET, CP201_RESET):
        got = await csms.wait_msg(cp_id, lambda m: m.action == "BootNotification" and m.answer, timeout=15)
        checks.check(f"{cp_id}: boots", got, "no BootNotification within 15 s (or before the simulator ended)")
    result, err = await csms.call(CP16_RESET, call16.GetConfiguration(key=["MeterPublicKey[1]"]))
    key = ((result.configuration_key or [{}])[0].get("value") or "") if result else ""
    if checks.check(f"{CP16_RESET}: GetConfiguration MeterPublicKey[1] answered", key.startswith("oca:base16:asn1:"),
                    err or f"got {key[:60]!r}"):
        with contextlib.suppress(ValueError):
            keys16[CP16_RESET] = bytes.fromhex(key[len("oca:base16:asn1:"):])
    for what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat"):
        await trigger_and_wait(csms, CP16_RESET, what, call16.TriggerMessage(requested_message=what),
                               lambda m, w=what: m.action == w, what)
    for what in ("FirmwareStatusNotification", "LogStatusNotification", "Heartbeat"):
        await trigger_and_wait(csms, CP201_RESET, what, call201.TriggerMessage(requested_message=what),
                               lambda m, w=what: m.action == w, what)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(csms.sim_done.wait(), max(0.0, RESET_AT_S - csms.elapsed()))
    if csms.sim_done.is_set():
        checks.check("the resets happen before the simulator ends", False, "the simulator ended first")
        return
    await asyncio.gather(reset_16(csms, CP16_RESET), reset_201(csms, CP201_RESET))


# ---------------------------------------------------------------- checks of the traffic


def check_traffic(csms: Csms, keys16: dict[str, bytes]) -> None:
    checks = csms.checks
    every = [(cp_id, m) for cp_id, ms in csms.msgs.items() for m in ms]
    errors = [f"{cp_id} {m.action}: {m.error}" for cp_id, m in every if m.error]
    checks.check("the ocpp library accepted every CALL of the simulator (no CALLERROR answered)", not errors,
                 "; ".join(errors[:5]) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
    checks.check("only the scenario's chargers connected, all with a subprotocol",
                 not csms.refused and set(csms.msgs) <= set(CP16 + CP201),
                 f"refused {csms.refused}, ids {sorted(csms.msgs)}")
    for cp_id in CP16 + CP201:
        want = "ocpp1.6" if cp_id in CP16 else "ocpp2.0.1"
        checks.check(f"{cp_id}: connected with subprotocol {want}", csms.subprotocols.get(cp_id) == want,
                     f"got {csms.subprotocols.get(cp_id)!r}")
        ms = csms.msgs[cp_id]
        boots = [m for m in ms if m.action == "BootNotification"]
        checks.check(f"{cp_id}: booted (BootNotification first)", boots and ms[0].action == "BootNotification",
                     f"first messages {[m.action for m in ms[:3]]}")
    for cp_id in (CP16_DRIVEN, CP201_DRIVEN):
        checks.check(f"{cp_id}: sent a Heartbeat (interval {BOOT_INTERVAL_S} s)",
                     any(m.action == "Heartbeat" for m in csms.msgs[cp_id]), "none")

    for cp_id in CP16:
        ms = csms.msgs[cp_id]
        connectors = {m.payload.get("connectorId") for m in ms if m.action == "StatusNotification"}
        checks.check(f"{cp_id}: StatusNotification for connectors 0 and 1", {0, 1} <= connectors, f"got {connectors}")
        check_transactions_16(checks, cp_id, ms, keys16.get(cp_id))
    for cp_id in CP201:
        ms = csms.msgs[cp_id]
        evses = {(m.payload.get("evseId"), m.payload.get("connectorId"))
                 for m in ms if m.action == "StatusNotification"}
        checks.check(f"{cp_id}: StatusNotification for EVSE 1 connector 1", (1, 1) in evses, f"got {evses}")
        check_transactions_201(checks, cp_id, ms)

    # The TxDefaultProfile stays: from the first reading that offered the
    # limit on, the driven chargers never offer or draw more.
    for cp_id in (CP16_DRIVEN, CP201_DRIVEN):
        readings = [meter_of(m) for m in csms.msgs[cp_id] if m.action in ("MeterValues", "TransactionEvent")]
        first = next((i for i, r in enumerate(readings) if PROFILE_LIMIT_A in values_of(r, "Current.Offered")), None)
        if first is None:
            continue
        over = [(values_of(r, "Current.Offered"), phase_currents(r)) for r in readings[first:]
                if any(v > PROFILE_LIMIT_A for v in values_of(r, "Current.Offered") + phase_currents(r))]
        checks.check(f"{cp_id}: after the limit took effect no reading offers or draws more than {PROFILE_LIMIT_A} A",
                     not over, f"(offered, import) above the limit: {over[:3]}")


def check_register(checks: Checks, name: str, readings: list[float], ended: bool) -> None:
    drops = [(a, b) for a, b in zip(readings, readings[1:]) if b < a - REGISTER_SLACK_WH]
    checks.check(f"{name}: Energy.Active.Import.Register never decreases ({len(readings)} readings)", not drops,
                 f"drops {drops[:3]} in {readings[:12]}")
    if ended and len(readings) >= 2:
        checks.check(f"{name}: the register grew over the session", readings[-1] > readings[0] + REGISTER_SLACK_WH,
                     f"first {readings[0]}, last {readings[-1]}")


def check_ocmf(checks: Checks, name: str, text: str, key: bytes | None, kind: str,
               register_wh: float | None, token: str | None) -> None:
    try:
        _, payload, sig = split_ocmf(text)
    except Exception as e:
        checks.check(f"{name}: the OCMF record parses", False, f"{type(e).__name__}: {e}: {text[:80]!r}")
        return
    rd = (payload.get("RD") or [{}])[0]
    problems = []
    if rd.get("TX") != kind:
        problems.append(f"RD.TX {rd.get('TX')!r}, expected {kind!r}")
    rv = number(rd.get("RV"))
    if register_wh is not None and (rv is None or abs(rv * 1000 - register_wh) > 0.5):
        problems.append(f"RD.RV {rd.get('RV')!r} kWh is not the register {register_wh} Wh")
    if token is not None and payload.get("ID") != token:
        problems.append(f"ID {payload.get('ID')!r}, expected {token!r}")
    if sig.get("SA") != "ECDSA-secp256r1-SHA256" or not sig.get("SD"):
        problems.append(f"signature section {sig!r}")
    checks.check(f"{name}: the OCMF record ({kind}) matches the transaction", not problems, "; ".join(problems))
    if HAVE_CRYPTOGRAPHY:
        if key is None:
            checks.check(f"{name}: the OCMF signature verifies", False, "no public key to verify with")
        else:
            why = verify_ocmf(text, key)
            checks.check(f"{name}: the OCMF signature verifies (ECDSA P-256 / SHA-256)", why is None, why)


def check_transactions_16(checks: Checks, cp_id: str, ms: list[Msg], key: bytes | None) -> None:
    starts = [m for m in ms if m.action == "StartTransaction" and m.answer]
    stops = [m for m in ms if m.action == "StopTransaction"]
    ids = [m.answer["transactionId"] for m in starts]
    checks.check(f"{cp_id}: at least one StartTransaction", starts, "none")
    stop_ids = [m.payload.get("transactionId") for m in stops]
    checks.check(f"{cp_id}: every StopTransaction names a started transaction, once",
                 all(t in ids for t in stop_ids) and len(stop_ids) == len(set(stop_ids)),
                 f"started {ids}, stopped {stop_ids}")
    running = [t for t in ids if t not in stop_ids]
    checks.check(f"{cp_id}: at most one transaction still running at the end", len(running) <= 1, f"running {running}")
    mv_ids = {m.payload.get("transactionId") for m in ms if m.action == "MeterValues" and "transactionId" in m.payload}
    checks.check(f"{cp_id}: every MeterValues transactionId is a started transaction", mv_ids <= set(ids),
                 f"unknown {mv_ids - set(ids)}")
    # A transaction's MeterValues come after its StartTransaction and before
    # its StopTransaction.
    for start in starts:
        tx = start.answer["transactionId"]
        token = start.payload.get("idTag")
        related = [m for m in ms if (m.action == "MeterValues" and m.payload.get("transactionId") == tx)
                   or (m.action == "StopTransaction" and m.payload.get("transactionId") == tx)]
        stop = next((m for m in related if m.action == "StopTransaction"), None)
        name = f"{cp_id} transaction {tx}"
        if stop is not None:
            checks.check(f"{name}: meterStop ≥ meterStart", stop.payload["meterStop"] >= start.payload["meterStart"],
                         f"{start.payload['meterStart']} → {stop.payload['meterStop']}")
            checks.check(f"{name}: no MeterValues after its StopTransaction", related[-1] is stop,
                         f"{[m.action for m in related]}")
        readings = [float(start.payload["meterStart"])]
        for m in related:
            readings += values_of(meter_of(m), ENERGY)
            if m.action == "StopTransaction":
                readings.append(float(m.payload["meterStop"]))
        check_register(checks, name, readings, stop is not None)
        signed = [(m, sv) for m in related for sv in meter_of(m) if sv.get("format") == "SignedData"]
        begin = [sv for m, sv in signed if sv.get("context") == "Transaction.Begin"]
        end = [sv for m, sv in signed if sv.get("context") == "Transaction.End"]
        checks.check(f"{name}: a SignedData reading (context Transaction.Begin) starting 'OCMF|'",
                     begin and str(begin[0].get("value", "")).startswith("OCMF|"), f"signed rows: {len(signed)}")
        if begin:
            check_ocmf(checks, f"{name} begin", str(begin[0].get("value")), key, "B",
                       float(start.payload["meterStart"]), token)
        if stop is not None:
            end_sv = [sv for sv in samples(stop.payload.get("transactionData")) if sv.get("format") == "SignedData"]
            checks.check(f"{name}: StopTransaction transactionData has a SignedData reading starting 'OCMF|'",
                         end_sv and str(end_sv[0].get("value", "")).startswith("OCMF|") and end == end_sv,
                         f"{end_sv[:1]}")
            if end_sv:
                check_ocmf(checks, f"{name} end", str(end_sv[0].get("value")), key, "E",
                           float(stop.payload["meterStop"]), token)


def check_transactions_201(checks: Checks, cp_id: str, ms: list[Msg]) -> None:
    events: dict[str, list[dict]] = defaultdict(list)
    for m in ms:
        if m.action == "TransactionEvent":
            events[tx201(m)].append(m.payload)
    checks.check(f"{cp_id}: at least one transaction", events, "no TransactionEvent")
    running = [t for t, evs in events.items() if evs[-1].get("eventType") != "Ended"]
    checks.check(f"{cp_id}: at most one transaction still running at the end", len(running) <= 1, f"running {running}")
    key_seen: set[str] = set()
    for tx, evs in events.items():
        name = f"{cp_id} transaction {tx}"
        seq = [e.get("seqNo") for e in evs]
        types = [e.get("eventType") for e in evs]
        checks.check(f"{name}: seqNo 0, 1, 2, … without gaps ({len(seq)} events)", seq == list(range(len(seq))),
                     f"seqNo {seq}")
        checks.check(f"{name}: Started first, Ended (if any) last, Updated between",
                     types[0] == "Started" and all(t == "Updated" for t in types[1:-1])
                     and (len(types) == 1 or types[-1] in ("Updated", "Ended")),
                     f"{types}")
        token = (evs[0].get("idToken") or {}).get("idToken")
        ended = types[-1] == "Ended"
        readings = [v for e in evs for v in values_of(samples(e.get("meterValue")), ENERGY)]
        check_register(checks, name, readings, ended)
        edges = [(evs[0], "B", "Transaction.Begin")] + ([(evs[-1], "E", "Transaction.End")] if ended else [])
        for e, kind, context in edges:
            svs = [sv for sv in samples(e.get("meterValue"))
                   if sv.get("context") == context and measurand(sv) == ENERGY]
            smv = (svs[0].get("signedMeterValue") if svs else None) or {}
            what = f"{name} {e.get('eventType')}"
            try:
                data = base64.b64decode(smv.get("signedMeterData", ""), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                data = ""
            try:
                key = base64.b64decode(smv.get("publicKey", ""), validate=True)
            except binascii.Error:
                key = b""
            ok = checks.check(
                f"{what}: signedMeterValue with encodingMethod OCMF, base64 'OCMF|…' data and a publicKey",
                smv.get("encodingMethod") == "OCMF" and data.startswith("OCMF|") and key and smv.get("signingMethod"),
                f"sampledValue {svs[:1]}",
            )
            if ok:
                key_seen.add(smv["publicKey"])
                check_ocmf(checks, what, data, key, kind, number(svs[0].get("value")), token)
    if key_seen:
        checks.check(f"{cp_id}: one meter public key in all its signed readings", len(key_seen) == 1,
                     f"{len(key_seen)} different keys")


# ---------------------------------------------------------------- main


def check_summary(checks: Checks, returncode: int | None, stdout: str, stderr: str) -> None:
    checks.check("`voltyard simulate` exits 0", returncode == 0,
                 f"exit code {returncode}; stderr tail: {stderr.strip()[-400:]!r}")
    try:
        summary = json.loads(stdout)
    except ValueError as e:
        checks.check("`voltyard simulate --json` prints a JSON summary", False, f"{e}: {stdout[:300]!r}")
        return
    checks.check("`voltyard simulate --json` prints a JSON summary", isinstance(summary, dict), repr(summary)[:300])
    if not isinstance(summary, dict):
        return
    print("simulator summary: " + ", ".join(
        f"{k}={summary.get(k)}"
        for k in ("chargers", "connects", "messages_sent", "messages_received", "calls_answered",
                  "sessions_started", "sessions_completed", "energy_wh", "profiles_accepted")
    ), flush=True)
    errs = summary.get("errors") or []
    checks.check("simulator: 0 schema violations", summary.get("schema_violations") == 0,
                 f"{summary.get('schema_violations')}; errors: {errs}")
    checks.check("simulator: no CALLERROR received from the ocpp CSMS", summary.get("call_errors_received") == 0,
                 f"{summary.get('call_errors_received')}; errors: {errs}")
    checks.check("simulator: no CALLERROR sent to the ocpp CSMS", summary.get("call_errors_sent") == 0,
                 f"{summary.get('call_errors_sent')}; errors: {errs}")
    checks.check("simulator: no timeouts, no failed connects", summary.get("timeouts") == 0
                 and summary.get("connect_failures") == 0, f"{summary}")
    checks.check("simulator: 4 chargers, every one started a session", summary.get("chargers") == 4
                 and (summary.get("sessions_started") or 0) >= 4, f"{summary}")
    checks.check("simulator: both charging profiles counted as accepted", (summary.get("profiles_accepted") or 0) >= 2
                 and summary.get("profiles_rejected") == 0, f"{summary}")


async def run(args: argparse.Namespace, workdir: Path, checks: Checks) -> Csms:
    csms = Csms(checks, args.verbose)
    keys16: dict[str, bytes] = {}
    scenario = workdir / "interop.toml"
    scenario.write_text(SCENARIO)
    async with serve(csms.handler, "127.0.0.1", 0, subprotocols=["ocpp2.0.1", "ocpp1.6"],
                     close_timeout=2, open_timeout=10) as server:
        port = server.sockets[0].getsockname()[1]
        cmd = [str(args.bin), "simulate", "--url", f"ws://127.0.0.1:{port}/ocpp", "--scenario", str(scenario),
               "--duration", f"{SIM_DURATION_S}s", "--json", "--seed", str(SEED)]
        print(f"CSMS (ocpp {version_of('ocpp')}) on ws://127.0.0.1:{port}/ocpp; "
              f"running voltyard {' '.join(cmd[1:])}", flush=True)
        csms.t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        output = asyncio.create_task(proc.communicate())
        drivers = [
            asyncio.create_task(drive_16(csms, CP16_DRIVEN, keys16)),
            asyncio.create_task(drive_201(csms, CP201_DRIVEN)),
            asyncio.create_task(drive_others(csms, keys16)),
        ]
        stdout = stderr = b""
        try:
            stdout, stderr = await asyncio.wait_for(asyncio.shield(output), SIM_TIMEOUT_S)
        except TimeoutError:
            checks.check(f"`voltyard simulate` ends by itself within {SIM_TIMEOUT_S} s", False,
                         f"still running; killing PID {proc.pid}")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(TimeoutError):
                stdout, stderr = await asyncio.wait_for(asyncio.shield(output), 5)
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5)
            if not output.done():
                output.cancel()
                await asyncio.gather(output, return_exceptions=True)
            csms.sim_done.set()
            _, pending = await asyncio.wait(drivers, timeout=15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in drivers:
                if task in pending:
                    checks.check("the CSMS-side scripts end once the simulator has ended", False,
                                 f"{task.get_coro().__name__} was still running 15 s later")
                elif task.exception() is not None:
                    e = task.exception()
                    checks.check(f"the CSMS-side script {task.get_coro().__name__} ran to its end", False,
                                 "".join(traceback.format_exception(type(e), e, e.__traceback__))[-1500:])
        (workdir / "simulate.stdout").write_bytes(stdout or b"")
        (workdir / "simulate.stderr").write_bytes(stderr or b"")
        check_summary(checks, proc.returncode, (stdout or b"").decode(errors="replace"),
                      (stderr or b"").decode(errors="replace"))
        check_traffic(csms, keys16)
    return csms


def version_of(package: str) -> str:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return "?"


def dump(csms: Csms, path: Path) -> None:
    data = {
        "received": {cp: [m.__dict__ | {"at": round(m.at - csms.t0, 3)} for m in ms] for cp, ms in csms.msgs.items()},
        "sent": csms.our_calls,
    }
    path.write_text(json.dumps(data, indent=1, default=str))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, type=Path, help="path to the voltyard binary")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every CALL the simulator sends")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (scenario, output, traffic.json)")
    args = parser.parse_args()
    if not args.bin.is_file():
        parser.error(f"--bin {args.bin}: no such file")
    args.bin = args.bin.resolve()
    return args


def main() -> int:
    args = parse_args()
    # The library logs every refused frame with a traceback; the checks
    # report those already.
    logging.getLogger("ocpp").setLevel(logging.WARNING if args.verbose else logging.CRITICAL)
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    if not HAVE_CRYPTOGRAPHY:
        print("note: the `cryptography` package is missing: OCMF signatures are not verified", flush=True)
    checks = Checks()
    workdir = Path(tempfile.mkdtemp(prefix="voltyard-sim-interop-"))
    csms = None
    try:
        csms = asyncio.run(run(args, workdir, checks))
    except Exception:
        checks.check("the interop script ran without an exception", False, traceback.format_exc()[-2000:])
    if csms is not None:
        dump(csms, workdir / "traffic.json")
    if checks.failed or args.keep:
        print(f"scenario, simulator output and recorded traffic kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
