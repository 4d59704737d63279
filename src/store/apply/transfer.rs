//! Firmware requests, campaigns, log requests and upload tokens inside the
//! writer's transaction. A charger's status notification moves its request
//! and, for a campaign, the campaign's target in the same commit that
//! acknowledges it.

use super::{AdminResult, Ctx, Reply, Result, decode, encode};
use crate::domain::message::DataTransfer;
use crate::domain::transfer::{
    Campaign, CampaignState, CampaignTarget, FirmwareOrder, FirmwareRequest, FwState, LogKind, LogRequest, LogState,
    Reported, UploadedFile, fw_state_of, log_state_of,
};
use crate::store::tables::{CAMPAIGNS, FIRMWARE, LOG_REQUESTS, UPLOAD_TOKENS};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde_json::json;

#[derive(Debug, Clone)]
pub enum TransferOp {
    /// A new firmware request (before its CALL goes out, so an early status
    /// finds it); a campaign's target moves to `sent` with it.
    FirmwareCreate {
        charger: String,
        order: FirmwareOrder,
        campaign: Option<u64>,
    },
    /// The charger's answer to UpdateFirmware; not accepted ends the request.
    FirmwareAnswered {
        charger: String,
        id: u64,
        accepted: bool,
        answer: String,
    },
    /// No progress within the step timeout.
    FirmwareTimeout {
        charger: String,
        id: u64,
    },
    LogCreate {
        charger: String,
        kind: LogKind,
        since: Option<DateTime<Utc>>,
        /// sha256 (hex) of the one-time upload token.
        token_hash: String,
    },
    LogAnswered {
        charger: String,
        id: u64,
        accepted: bool,
        answer: String,
        filename: Option<String>,
    },
    /// A file arrived with the token whose hash this is: record it and
    /// spend the token. NotFound when the token is unknown or spent.
    Uploaded {
        token_hash: String,
        file: UploadedFile,
    },
    CampaignCreate {
        order: FirmwareOrder,
        concurrency: u32,
        chargers: Vec<String>,
    },
    CampaignCancel {
        id: u64,
    },
    /// The runner could not send to a target (refused, unreachable).
    CampaignTarget {
        id: u64,
        charger: String,
        state: FwState,
        detail: String,
    },
}

type Keyed = TableDefinition<'static, (&'static str, u64), &'static [u8]>;

impl Ctx<'_> {
    fn next_id(&mut self, counter: &str) -> Result<u64> {
        let id = self.meta.get(counter)?.map(|v| v.value()).unwrap_or(1);
        self.meta.insert(counter, id + 1)?;
        Ok(id)
    }

    fn keyed<T: DeserializeOwned>(
        &self,
        table: Keyed,
        name: &'static str,
        charger: &str,
        id: u64,
    ) -> Result<Option<T>> {
        let t = self.w.open_table(table)?;
        let row = t.get((charger, id))?;
        row.map(|v| decode(name, v.value())).transpose()
    }

    /// The charger's newest row of a keyed table.
    fn newest<T: DeserializeOwned>(&self, table: Keyed, name: &'static str, charger: &str) -> Result<Option<T>> {
        let t = self.w.open_table(table)?;
        let mut range = t.range((charger, 0)..=(charger, u64::MAX))?;
        range.next_back().map(|e| decode(name, e?.1.value())).transpose()
    }

    /// The request a status notification is about: the one it names, or
    /// (1.6 names none) the charger's newest.
    fn addressed<T: DeserializeOwned>(
        &self,
        table: Keyed,
        name: &'static str,
        charger: &str,
        request_id: Option<i64>,
    ) -> Result<Option<T>> {
        if let Some(id) = request_id.and_then(|id| u64::try_from(id).ok())
            && let Some(r) = self.keyed(table, name, charger, id)?
        {
            return Ok(Some(r));
        }
        self.newest(table, name, charger)
    }

    fn put_keyed<T: serde::Serialize>(&self, table: Keyed, charger: &str, id: u64, v: &T) -> Result<()> {
        self.w.open_table(table)?.insert((charger, id), encode(v).as_slice())?;
        Ok(())
    }

    fn campaign(&self, id: u64) -> Result<Option<Campaign>> {
        let t = self.w.open_table(CAMPAIGNS)?;
        let row = t.get(id)?;
        row.map(|v| decode("campaigns", v.value())).transpose()
    }

    fn put_campaign(&self, c: &Campaign) -> Result<()> {
        self.w.open_table(CAMPAIGNS)?.insert(c.id, encode(c).as_slice())?;
        Ok(())
    }

    /// Move a campaign's target to the state of its request.
    fn follow_request(&mut self, r: &FirmwareRequest, t: DateTime<Utc>) -> Result<()> {
        let Some(id) = r.campaign else { return Ok(()) };
        let Some(mut c) = self.campaign(id)? else { return Ok(()) };
        let Some(target) = c.targets.iter_mut().find(|x| x.request == Some(r.id)) else {
            return Ok(());
        };
        if target.state == FwState::Cancelled {
            return Ok(());
        }
        // Every report restarts the step clock, a new state or not.
        target.state = r.state;
        target.since = t;
        target.detail = r.statuses.last().map(|s| s.status.clone()).or_else(|| r.answer.clone());
        c.settle();
        self.put_campaign(&c)
    }

    fn put_firmware(&mut self, r: &FirmwareRequest, t: DateTime<Utc>) -> Result<()> {
        self.put_keyed(FIRMWARE, &r.charger, r.id, r)?;
        self.follow_request(r, t)
    }
}

pub(super) fn admin(ctx: &mut Ctx, op: TransferOp, t: DateTime<Utc>) -> Result<AdminResult> {
    Ok(match op {
        TransferOp::FirmwareCreate {
            charger,
            order,
            campaign,
        } => {
            let id = ctx.next_id("next_request")?;
            let r = FirmwareRequest {
                id,
                charger: charger.clone(),
                order,
                campaign,
                created_at: t,
                state: FwState::Sent,
                since: t,
                answer: None,
                statuses: vec![],
            };
            ctx.put_keyed(FIRMWARE, &charger, id, &r)?;
            if let Some(cid) = campaign
                && let Some(mut c) = ctx.campaign(cid)?
            {
                if let Some(target) = c.targets.iter_mut().find(|x| x.charger == charger) {
                    target.state = FwState::Sent;
                    target.request = Some(id);
                    target.since = t;
                    target.detail = None;
                }
                ctx.put_campaign(&c)?;
            }
            AdminResult::Json(json!({"id": id}))
        }
        TransferOp::FirmwareAnswered {
            charger,
            id,
            accepted,
            answer,
        } => match ctx.keyed::<FirmwareRequest>(FIRMWARE, "firmware", &charger, id)? {
            Some(mut r) => {
                if !accepted {
                    r.state = FwState::Failed;
                    r.since = t;
                }
                r.answer = Some(answer);
                ctx.put_firmware(&r, t)?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no firmware request {id} of {charger}")),
        },
        TransferOp::FirmwareTimeout { charger, id } => {
            match ctx.keyed::<FirmwareRequest>(FIRMWARE, "firmware", &charger, id)? {
                Some(mut r) if !r.state.finished() => {
                    r.state = FwState::Timeout;
                    r.since = t;
                    ctx.put_firmware(&r, t)?;
                    ctx.event(
                        t,
                        Some(&charger),
                        "firmware_timeout",
                        format!("firmware request {id}: no progress"),
                    )?;
                    AdminResult::Done
                }
                _ => AdminResult::Done,
            }
        }
        TransferOp::LogCreate {
            charger,
            kind,
            since,
            token_hash,
        } => {
            let id = ctx.next_id("next_request")?;
            let r = LogRequest {
                id,
                charger: charger.clone(),
                kind,
                since,
                created_at: t,
                state: LogState::Requested,
                filename: None,
                answer: None,
                statuses: vec![],
                files: vec![],
            };
            ctx.put_keyed(LOG_REQUESTS, &charger, id, &r)?;
            let bound = format!("{charger}\u{1f}{id}");
            ctx.w
                .open_table(UPLOAD_TOKENS)?
                .insert(token_hash.as_str(), bound.as_str())?;
            AdminResult::Json(json!({"id": id}))
        }
        TransferOp::LogAnswered {
            charger,
            id,
            accepted,
            answer,
            filename,
        } => match ctx.keyed::<LogRequest>(LOG_REQUESTS, "log_requests", &charger, id)? {
            Some(mut r) => {
                if r.state == LogState::Requested {
                    r.state = if accepted {
                        LogState::Accepted
                    } else {
                        LogState::Rejected
                    };
                }
                r.answer = Some(answer);
                r.filename = filename;
                ctx.put_keyed(LOG_REQUESTS, &charger, id, &r)?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no log request {id} of {charger}")),
        },
        TransferOp::Uploaded { token_hash, file } => {
            let bound = {
                let mut tokens = ctx.w.open_table(UPLOAD_TOKENS)?;
                let removed = tokens.remove(token_hash.as_str())?;
                removed.map(|v| v.value().to_string())
            };
            let Some((charger, id)) = bound
                .as_deref()
                .and_then(|b| b.split_once('\u{1f}'))
                .and_then(|(c, id)| Some((c.to_string(), id.parse::<u64>().ok()?)))
            else {
                return Ok(AdminResult::NotFound("unknown or spent upload token".into()));
            };
            let Some(mut r) = ctx.keyed::<LogRequest>(LOG_REQUESTS, "log_requests", &charger, id)? else {
                return Ok(AdminResult::NotFound(format!("no log request {id} of {charger}")));
            };
            r.files.push(file);
            ctx.put_keyed(LOG_REQUESTS, &charger, id, &r)?;
            AdminResult::Json(json!({"charger": charger, "id": id}))
        }
        TransferOp::CampaignCreate {
            order,
            concurrency,
            chargers,
        } => {
            let id = ctx.next_id("next_campaign")?;
            let mut c = Campaign {
                id,
                created_at: t,
                order,
                concurrency,
                state: CampaignState::Running,
                targets: chargers
                    .into_iter()
                    .map(|charger| CampaignTarget {
                        charger,
                        state: FwState::Queued,
                        request: None,
                        since: t,
                        detail: None,
                    })
                    .collect(),
            };
            c.settle();
            ctx.put_campaign(&c)?;
            AdminResult::Json(json!({"id": id}))
        }
        TransferOp::CampaignCancel { id } => match ctx.campaign(id)? {
            Some(mut c) if c.state == CampaignState::Running => {
                c.state = CampaignState::Cancelled;
                // Chargers already updating carry on; the queue is dropped.
                for target in c.targets.iter_mut().filter(|x| x.state == FwState::Queued) {
                    target.state = FwState::Cancelled;
                    target.since = t;
                }
                ctx.put_campaign(&c)?;
                AdminResult::Done
            }
            Some(c) => AdminResult::Conflict(format!("campaign {id} is {:?}, not running", c.state).to_lowercase()),
            None => AdminResult::NotFound(format!("no campaign {id}")),
        },
        TransferOp::CampaignTarget {
            id,
            charger,
            state,
            detail,
        } => match ctx.campaign(id)? {
            Some(mut c) => {
                if let Some(target) = c.targets.iter_mut().find(|x| x.charger == charger) {
                    target.state = state;
                    target.since = t;
                    target.detail = Some(detail);
                    if state == FwState::Queued {
                        // Back in the queue: its old request no longer speaks for it,
                        // and a campaign its failure had finished runs again.
                        target.request = None;
                        if c.state == CampaignState::Done {
                            c.state = CampaignState::Running;
                        }
                    }
                }
                c.settle();
                ctx.put_campaign(&c)?;
                AdminResult::Done
            }
            None => AdminResult::NotFound(format!("no campaign {id}")),
        },
    })
}

/// FirmwareStatusNotification / SignedFirmwareStatusNotification.
pub(super) fn firmware_status(
    ctx: &mut Ctx,
    charger: &str,
    status: String,
    request_id: Option<i64>,
    t: DateTime<Utc>,
) -> Result<Reply> {
    let Some(mut r) = ctx.addressed::<FirmwareRequest>(FIRMWARE, "firmware", charger, request_id)? else {
        ctx.event(t, Some(charger), "FirmwareStatusNotification", status)?;
        return Ok(Reply::Ack);
    };
    r.statuses.push(Reported {
        t,
        status: status.clone(),
    });
    if let Some(state) = fw_state_of(&status)
        && r.state != FwState::Cancelled
    {
        r.state = state;
        r.since = t;
        if state.finished() {
            let detail = format!("firmware request {}: {status}", r.id);
            ctx.event(t, Some(charger), "firmware", detail)?;
        }
    }
    ctx.put_firmware(&r, t)?;
    Ok(Reply::Ack)
}

/// DiagnosticsStatusNotification / LogStatusNotification.
pub(super) fn log_status(
    ctx: &mut Ctx,
    charger: &str,
    status: String,
    request_id: Option<i64>,
    t: DateTime<Utc>,
) -> Result<Reply> {
    let Some(mut r) = ctx.addressed::<LogRequest>(LOG_REQUESTS, "log_requests", charger, request_id)? else {
        ctx.event(t, Some(charger), "LogStatusNotification", status)?;
        return Ok(Reply::Ack);
    };
    r.statuses.push(Reported {
        t,
        status: status.clone(),
    });
    if let Some(state) = log_state_of(&status) {
        r.state = state;
    }
    ctx.put_keyed(LOG_REQUESTS, charger, r.id, &r)?;
    Ok(Reply::Ack)
}

/// A DataTransfer is kept as an event with the answer its hook gave.
pub(super) fn data_transfer(ctx: &mut Ctx, charger: &str, dt: DataTransfer, t: DateTime<Utc>) -> Result<Reply> {
    let detail = serde_json::to_string(&dt).unwrap_or_default();
    ctx.event(t, Some(charger), "DataTransfer", detail)?;
    Ok(Reply::DataTransfer(dt.answer))
}
