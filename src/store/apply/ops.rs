//! Charger operations inside the writer's transaction: reservations (and
//! the connectors they hold against other tokens), the local lists
//! chargers confirmed, the availability an operator asked for, and the
//! display messages a charger reported. The rules are `domain::ops`.

use super::{AdminResult, Ctx, Lazy, Result, decode, encode};
use crate::domain::ops::{
    self, AvailabilityState, DisplayMessage, DisplayReport, LocalList, RequestedAvailability, Reservation,
    ReservationStatus,
};
use crate::domain::{Charger, ConnectorStatus};
use crate::store::tables::*;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};
use serde_json::json;

/// The tables of this module, opened with the transaction.
pub(in crate::store) struct Tables<'t> {
    reservations: Lazy<'t, u64, &'static [u8]>,
    open_reservations: Lazy<'t, u64, &'static str>,
    local_lists: Lazy<'t, &'static str, &'static [u8]>,
    availability: Lazy<'t, &'static str, &'static [u8]>,
    display: Lazy<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub fn open(w: &'t WriteTransaction) -> Result<Self> {
        Ok(Tables {
            reservations: Lazy::new(w, RESERVATIONS),
            open_reservations: Lazy::new(w, OPEN_RESERVATIONS),
            local_lists: Lazy::new(w, LOCAL_LISTS),
            availability: Lazy::new(w, AVAILABILITY),
            display: Lazy::new(w, DISPLAY_MESSAGES),
        })
    }
}

/// Operator (and server task) changes to charger operations.
#[derive(Debug, Clone)]
pub enum OpsOp {
    /// Store a new reservation (pending) with the next reservation id.
    ReservationAdd {
        charger: String,
        evse: Option<u32>,
        token: String,
        expires: DateTime<Utc>,
    },
    /// The charger's answer to ReserveNow or CancelReservation, or a
    /// server-side end: set the status of an open reservation.
    ReservationSet {
        id: u64,
        status: ReservationStatus,
        detail: String,
    },
    /// Mark every open reservation past its expiry as expired.
    ReservationsExpire,
    /// What a charger's local list now holds (after a sync), or its settings.
    LocalList(Box<LocalList>),
    /// An accepted ChangeAvailability: `scheduled` when the charger said Scheduled.
    Availability {
        charger: String,
        evse: u32,
        operative: bool,
        scheduled: bool,
    },
}

impl Ctx<'_> {
    fn reservation(&mut self, id: u64) -> Result<Option<Reservation>> {
        self.ops
            .reservations
            .t()?
            .get(id)?
            .map(|v| decode("reservations", v.value()))
            .transpose()
    }

    fn put_reservation(&mut self, r: &Reservation) -> Result<()> {
        self.ops.reservations.t()?.insert(r.id, encode(r).as_slice())?;
        if r.status.open() {
            self.ops.open_reservations.t()?.insert(r.id, r.charger.as_str())?;
        } else {
            self.ops.open_reservations.t()?.remove(r.id)?;
        }
        Ok(())
    }

    /// Open reservations, of one charger when given.
    fn open_reservations(&mut self, charger: Option<&str>) -> Result<Vec<Reservation>> {
        let mut ids = Vec::new();
        for e in self.ops.open_reservations.t()?.iter()? {
            let (id, ch) = e?;
            if charger.is_none_or(|c| c == ch.value()) {
                ids.push(id.value());
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.reservation(id)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The reservation that keeps `uid` off `evse` (any connector when
    /// `None`) of `ch` at `t`, if one does.
    pub(super) fn reserved_for_other(
        &mut self,
        ch: &Charger,
        uid: &str,
        evse: Option<u32>,
        t: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let open = self.open_reservations(Some(&ch.id))?;
        if open.is_empty() {
            return Ok(None);
        }
        let group = self.token(uid)?.and_then(|t| t.group);
        let mut evses: Vec<u32> = ch.connectors.iter().map(|c| c.evse).filter(|&e| e > 0).collect();
        evses.extend(evse.filter(|&e| e > 0));
        evses.extend(open.iter().filter_map(|r| r.evse));
        evses.sort_unstable();
        evses.dedup();
        let busy: Vec<u32> = self.active_on(&ch.id).into_iter().map(|(_, e)| e).collect();
        Ok(ops::blocking(&open, uid, group.as_deref(), evse, &evses, &busy, t).map(|r| r.id))
    }

    /// A transaction of `uid` started on `evse` of `charger`: the
    /// reservation it names, or an open one of this token there, is used.
    pub(super) fn use_reservation(
        &mut self,
        charger: &str,
        uid: Option<&str>,
        evse: Option<u32>,
        named: Option<i64>,
        session: u64,
        t: DateTime<Utc>,
    ) -> Result<()> {
        let open = self.open_reservations(Some(charger))?;
        let group = match uid {
            Some(u) => self.token(u)?.and_then(|t| t.group),
            None => None,
        };
        let found = open.into_iter().find(|r| match named {
            Some(id) => i64::try_from(r.id).is_ok_and(|x| x == id),
            None => {
                uid.is_some_and(|u| r.admits(u, group.as_deref())) && (r.evse.is_none() || r.evse == evse) && r.holds(t)
            }
        });
        if let Some(mut r) = found {
            r.status = ReservationStatus::Used;
            r.session = Some(session);
            r.detail = Some(format!("used by session {session}"));
            r.updated_at = t;
            self.put_reservation(&r)?;
            self.event(
                t,
                Some(charger),
                "reservation",
                format!("reservation {} used by session {session}", r.id),
            )?;
        }
        Ok(())
    }

    fn requested(&mut self, charger: &str) -> Result<Vec<RequestedAvailability>> {
        Ok(self
            .ops
            .availability
            .t()?
            .get(charger)?
            .map(|v| decode("availability", v.value()))
            .transpose()?
            .unwrap_or_default())
    }
}

/// What the bill just written for a completed session charges (incl. VAT),
/// for the charger's display; `None` when no tariff priced it.
pub(super) fn final_cost(ctx: &mut Ctx, session: u64) -> Result<Option<rust_decimal::Decimal>> {
    let bill: Option<crate::billing::Bill> = ctx
        .bills
        .t()?
        .get(session)?
        .map(|v| decode("bills", v.value()))
        .transpose()?;
    Ok(bill.and_then(|b| b.price).map(|p| p.total_incl_vat))
}

/// A status notification makes a requested availability effective.
pub(super) fn note_status(
    ctx: &mut Ctx,
    ch: &Charger,
    evse: u32,
    status: ConnectorStatus,
    at: DateTime<Utc>,
) -> Result<()> {
    let mut list = ctx.requested(&ch.id)?;
    let reached = |operative: bool, s: ConnectorStatus| {
        if operative {
            !matches!(s, ConnectorStatus::Unavailable | ConnectorStatus::Unknown)
        } else {
            s == ConnectorStatus::Unavailable
        }
    };
    let mut changed = false;
    for r in list.iter_mut().filter(|r| r.state != AvailabilityState::Effective) {
        let done = if r.evse == evse {
            reached(r.operative, status)
        } else if r.evse == 0 {
            // The whole charger: every connector it reported has the state.
            let conns: Vec<_> = ch.connectors.iter().filter(|c| c.evse > 0).collect();
            !conns.is_empty() && conns.iter().all(|c| reached(r.operative, c.status))
        } else {
            false
        };
        if done {
            r.state = AvailabilityState::Effective;
            r.effective_at = Some(at);
            changed = true;
        }
    }
    if changed {
        ctx.ops
            .availability
            .t()?
            .insert(ch.id.as_str(), encode(&list).as_slice())?;
    }
    Ok(())
}

/// 2.0.1 ReservationStatusUpdate: Expired or Removed by the charger.
pub(super) fn charger_ended_reservation(
    ctx: &mut Ctx,
    charger: &str,
    id: i64,
    status: &str,
    t: DateTime<Utc>,
) -> Result<()> {
    let Some(mut r) = u64::try_from(id)
        .ok()
        .map(|id| ctx.reservation(id))
        .transpose()?
        .flatten()
    else {
        return ctx.event(
            t,
            Some(charger),
            "reservation",
            format!("charger reported unknown reservation {id} {status}"),
        );
    };
    if r.charger != charger || !r.status.open() {
        return Ok(());
    }
    r.status = if status == "Expired" {
        ReservationStatus::Expired
    } else {
        ReservationStatus::Cancelled
    };
    r.detail = Some(format!("charger reported {status}"));
    r.updated_at = t;
    ctx.put_reservation(&r)?;
    ctx.event(
        t,
        Some(charger),
        "reservation",
        format!("reservation {id}: charger reported {status}"),
    )
}

/// 2.0.1 NotifyDisplayMessages: one part of a GetDisplayMessages answer.
pub(super) fn display_messages(
    ctx: &mut Ctx,
    charger: &str,
    request_id: i64,
    messages: Vec<DisplayMessage>,
    more_to_come: bool,
    t: DateTime<Utc>,
) -> Result<()> {
    let old: Option<DisplayReport> = ctx
        .ops
        .display
        .t()?
        .get(charger)?
        .map(|v| decode("display_messages", v.value()))
        .transpose()?;
    let mut report = match old {
        Some(r) if r.request_id == request_id && !r.complete => r,
        _ => DisplayReport {
            request_id,
            messages: Vec::new(),
            complete: false,
            at: t,
        },
    };
    report.messages.extend(messages);
    report.complete = !more_to_come;
    report.at = t;
    ctx.ops.display.t()?.insert(charger, encode(&report).as_slice())?;
    Ok(())
}

pub(super) fn admin(ctx: &mut Ctx, op: OpsOp, t: DateTime<Utc>) -> Result<AdminResult> {
    Ok(match op {
        OpsOp::ReservationAdd {
            charger,
            evse,
            token,
            expires,
        } => {
            if ctx.charger(&charger)?.is_none() {
                return Ok(AdminResult::NotFound(format!("no charger {charger}")));
            }
            let Some(tok) = ctx.token(&token)? else {
                return Ok(AdminResult::NotFound(format!("no token {token}")));
            };
            if tok.blocked {
                return Ok(AdminResult::Invalid("token", format!("{token} is blocked")));
            }
            if let Some(other) = ctx
                .open_reservations(Some(&charger))?
                .into_iter()
                .find(|r| r.holds(t) && (r.evse == evse || r.evse.is_none() || evse.is_none()))
            {
                return Ok(AdminResult::Conflict(format!(
                    "reservation {} already holds {} of charger {charger} until {}",
                    other.id,
                    other
                        .evse
                        .map_or("a connector".to_string(), |e| format!("connector {e}")),
                    other.expires.to_rfc3339()
                )));
            }
            let id = ctx.meta.get("next_reservation")?.map(|v| v.value()).unwrap_or(1);
            ctx.meta.insert("next_reservation", id + 1)?;
            let r = Reservation {
                id,
                charger,
                evse,
                token,
                group: tok.group,
                expires,
                status: ReservationStatus::Pending,
                detail: None,
                session: None,
                created_at: t,
                updated_at: t,
            };
            ctx.put_reservation(&r)?;
            AdminResult::Json(json!(r))
        }
        OpsOp::ReservationSet { id, status, detail } => match ctx.reservation(id)? {
            Some(mut r) if r.status.open() => {
                r.status = status;
                r.detail = Some(detail.clone());
                r.updated_at = t;
                ctx.put_reservation(&r)?;
                let charger = r.charger.clone();
                ctx.event(t, Some(&charger), "reservation", format!("reservation {id}: {detail}"))?;
                AdminResult::Json(json!(r))
            }
            Some(r) => AdminResult::Conflict(format!("reservation {id} is already {:?}", r.status).to_lowercase()),
            None => AdminResult::NotFound(format!("no reservation {id}")),
        },
        OpsOp::ReservationsExpire => {
            let mut expired = Vec::new();
            for mut r in ctx.open_reservations(None)? {
                if r.expires <= t {
                    r.status = ReservationStatus::Expired;
                    r.detail = Some("expired".into());
                    r.updated_at = t;
                    ctx.put_reservation(&r)?;
                    expired.push(r.id);
                }
            }
            AdminResult::Json(json!(expired))
        }
        OpsOp::LocalList(list) => {
            ctx.ops
                .local_lists
                .t()?
                .insert(list.charger.as_str(), encode(&*list).as_slice())?;
            AdminResult::Done
        }
        OpsOp::Availability {
            charger,
            evse,
            operative,
            scheduled,
        } => {
            let mut list = ctx.requested(&charger)?;
            // A request for the whole charger replaces every connector's.
            list.retain(|r| r.evse != evse && evse != 0);
            list.push(RequestedAvailability {
                evse,
                operative,
                state: if scheduled {
                    AvailabilityState::Scheduled
                } else {
                    AvailabilityState::Pending
                },
                requested_at: t,
                effective_at: None,
            });
            list.sort_by_key(|r| r.evse);
            ctx.ops
                .availability
                .t()?
                .insert(charger.as_str(), encode(&list).as_slice())?;
            AdminResult::Json(json!(list))
        }
    })
}
