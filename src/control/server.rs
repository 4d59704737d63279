//! The server side of the control socket. Each client connection is its
//! own task; a slow client only ever slows itself.

use super::proto::*;
use crate::domain::circuit::{self, Circuit, MeterSource};
use crate::domain::message::{Command, CommandResult};
use crate::domain::{AccessRule, Charger, Registration, Site, Token};
use crate::loadctl::Signal;
use crate::server::Shared;
use crate::store::{AdminOp, AdminResult, LoadOp, SessionFilter, StoreError};
use chrono::Utc;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Largest request line accepted.
pub(super) const MAX_LINE: usize = 1 << 20;

pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("another voltyard server is already using {}", path.display());
        }
        std::fs::remove_file(path)?;
    }
    // Bound in a fresh owner-only (0700) directory and moved into place, so
    // the socket is never reachable with the umask's mode, not even between
    // bind and chmod.
    let private = tempfile::Builder::new()
        .prefix(".control-")
        .tempdir_in(path.parent().unwrap_or(Path::new(".")))?;
    let staged = private.path().join("control.sock");
    let listener = UnixListener::bind(&staged)?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&staged, path)?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = client(stream, shared).await {
                        tracing::debug!("control client: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("control accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn client(stream: UnixStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (read, write) = stream.into_split();
    session(BufReader::new(read), write, shared).await
}

/// One control connection, whatever carries it: the Unix socket, or the TLS
/// listener after the token was checked.
pub(super) async fn session<R, W>(mut lines: BufReader<R>, mut write: W, shared: Arc<Shared>) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut lines).take(MAX_LINE as u64).read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let reply = match serde_json::from_str::<Envelope>(&line) {
            Ok(env) if env.v != VERSION => Err(ApiError::new(
                ErrorKind::Invalid,
                format!(
                    "control API version {} is not supported (server speaks {VERSION}); use the matching voltyard binary",
                    env.v
                ),
            )),
            Ok(Envelope {
                request:
                    Request::ChargerLogs {
                        id,
                        since,
                        limit,
                        follow: true,
                    },
                ..
            }) => {
                return follow_logs(&shared, &id, since, limit, &mut write).await;
            }
            Ok(Envelope {
                request: Request::Watch { charger },
                ..
            }) => {
                return watch(&shared, charger.as_deref(), &mut write).await;
            }
            Ok(env) => handle(&shared, env.request).await,
            Err(e) => Err(ApiError::new(ErrorKind::Invalid, format!("bad request: {e}"))),
        };
        write_line(&mut write, &to_reply(reply)).await?;
    }
}

pub(super) fn to_reply(r: Result<Value, ApiError>) -> Reply {
    match r {
        Ok(result) => Reply {
            ok: true,
            result: Some(result),
            error: None,
        },
        Err(error) => Reply {
            ok: false,
            result: None,
            error: Some(error),
        },
    }
}

pub(super) async fn write_line<T: serde::Serialize>(
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
    v: &T,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string(v).map_err(std::io::Error::other)?;
    text.push('\n');
    w.write_all(text.as_bytes()).await
}

async fn follow_logs(
    shared: &Shared,
    id: &str,
    since: Option<chrono::DateTime<Utc>>,
    limit: usize,
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    if shared.store.charger(id).map_err(std::io::Error::other)?.is_none() {
        let err = ApiError::new(ErrorKind::NotFound, format!("no charger {id}"));
        return write_line(w, &to_reply(Err(err))).await;
    }
    // Subscribe before reading history so no frame falls between the two.
    let mut feed = shared.store.subscribe_journal();
    let history = shared.store.journal(id, since, limit).map_err(std::io::Error::other)?;
    let last = history.last().map_or(0, |j| j.seq);
    write_line(w, &to_reply(Ok(json!(history)))).await?;
    loop {
        match feed.recv().await {
            Ok(j) if j.charger == id && j.seq > last => write_line(w, &StreamItem { journal: j }).await?,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!("log follower lagged by {n} frames");
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Every journaled frame (of `charger`, when given) as it is committed. A
/// watcher that cannot keep up is told how much it missed instead of
/// holding anything up: the feed is a bounded broadcast.
async fn watch(
    shared: &Shared,
    charger: Option<&str>,
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> std::io::Result<()> {
    let mut feed = shared.store.subscribe_journal();
    write_line(w, &to_reply(Ok(json!({})))).await?;
    loop {
        let item = match feed.recv().await {
            Ok(j) if charger.is_none_or(|c| c == j.charger) => WatchItem::Journal(j),
            Ok(_) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => WatchItem::Lagged(n),
            Err(_) => return Ok(()),
        };
        write_line(w, &item).await?;
    }
}

pub(super) fn internal(e: StoreError) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

fn admin_result(shared: &Shared, r: AdminResult) -> Result<Value, ApiError> {
    match r {
        AdminResult::Done => Ok(json!({})),
        AdminResult::Charger(Some(c)) => Ok(json!(view(shared, *c))),
        AdminResult::Charger(None) => Err(ApiError::new(ErrorKind::NotFound, "no such charger")),
        AdminResult::NotFound(m) => Err(ApiError::new(ErrorKind::NotFound, m)),
        AdminResult::Conflict(m) => Err(ApiError::new(ErrorKind::Conflict, m)),
        AdminResult::Invalid(field, reason) => Err(invalid(field, reason)),
        AdminResult::Json(v) => Ok(v),
    }
}

pub(super) async fn admin(shared: &Shared, op: AdminOp) -> Result<Value, ApiError> {
    admin_result(shared, shared.store.admin(op, Utc::now()).await.map_err(internal)?)
}

fn view(shared: &Shared, c: Charger) -> ChargerView {
    let live = shared.registry.live(&c.id);
    ChargerView::new(c, live)
}

pub(super) async fn command(shared: &Shared, id: &str, cmd: Command) -> Result<CommandResult, ApiError> {
    if shared.store.charger(id).map_err(internal)?.is_none() {
        return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}")));
    }
    // The connection enforces the call timeout; this bound only covers a queue.
    let wait = shared.config.call_timeout() * 2 + std::time::Duration::from_secs(5);
    let result = shared.registry.call(id, cmd, wait).await.map_err(|e| {
        use crate::ocpp::registry::CallError as C;
        let kind = match &e {
            C::NotConnected(_) | C::Closed => ErrorKind::NotConnected,
            C::Busy(_) => ErrorKind::Busy,
            C::Timeout(_) => ErrorKind::Timeout,
            C::Remote { .. } | C::BadAnswer(_) => ErrorKind::Rejected,
            C::Invalid(_) => ErrorKind::Invalid,
        };
        ApiError::new(kind, e.to_string())
    })?;
    if result.accepted() {
        Ok(result)
    } else {
        let status = match &result {
            CommandResult::Status { status, .. } => status.clone(),
            _ => "not accepted".into(),
        };
        Err(ApiError {
            kind: ErrorKind::Rejected,
            message: format!("charger {id} answered {status}"),
            result: Some(result),
        })
    }
}

pub(super) fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Invalid, format!("{field}: {reason}"))
}

async fn handle(shared: &Arc<Shared>, req: Request) -> Result<Value, ApiError> {
    let store = &shared.store;
    match req {
        Request::Status => Ok(json!(ServerStatus {
            version: env!("CARGO_PKG_VERSION").into(),
            api: VERSION,
            listen: shared.config.listen.to_string(),
            data_dir: shared.config.data_dir.display().to_string(),
            chargers_connected: shared.registry.connected(),
            commits: store.commits(),
            commit_time_us: store.commit_time_us(),
            boots_deferred: store.boots_deferred(),
            chargers_throttled: shared.throttled.load(std::sync::atomic::Ordering::Relaxed),
        })),
        Request::ChargerList => {
            let list: Vec<ChargerView> = store
                .chargers()
                .map_err(internal)?
                .into_iter()
                .map(|c| view(shared, c))
                .collect();
            Ok(json!(list))
        }
        Request::ChargerShow { id } => match store.charger(&id).map_err(internal)? {
            Some(c) => Ok(json!(view(shared, c))),
            None => Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}"))),
        },
        Request::ChargerAdd(a) => {
            let now = Utc::now();
            let mut c = Charger::new(&a.id, Registration::Accepted, now);
            if !a.id.chars().all(|ch| ch.is_ascii_graphic() && ch != '/') || a.id.is_empty() || a.id.len() > 48 {
                return Err(invalid("id", "1 to 48 printable ASCII characters without '/'"));
            }
            if let Some(site) = a.site {
                c.site = site;
            }
            c.circuit = a.circuit;
            c.max_current = a.max_current;
            c.max_power_w = a.max_power_w;
            if let Some(p) = a.phases {
                if p != 1 && p != 3 {
                    return Err(invalid("phases", "must be 1 or 3"));
                }
                c.phases = p;
            }
            if let Some(r) = a.phase_rotation {
                if !["L1L2L3", "L2L3L1", "L3L1L2"].contains(&r.as_str()) {
                    return Err(invalid("phase_rotation", "must be L1L2L3, L2L3L1 or L3L1L2"));
                }
                c.phase_rotation = r;
            }
            if let Some(pw) = a.password {
                if pw.len() < 8 {
                    return Err(invalid("password", "must be at least 8 characters"));
                }
                c.password_hash = Some(super::security::hash(&pw).await?);
            }
            if let Some(p) = a.security_profile {
                super::security::check_profile(p, c.password_hash.is_some())?;
                c.security_profile = p;
            }
            let r = admin(shared, AdminOp::ChargerAdd(Box::new(c))).await;
            // Placed in (or moved out of) a circuit: steer it from now on.
            shared.load.signal(Signal::Changed { charger: None });
            r
        }
        Request::ChargerAccept { id } => {
            let r = admin(
                shared,
                AdminOp::SetRegistration {
                    id: id.clone(),
                    registration: Registration::Accepted,
                },
            )
            .await?;
            // A connected pending charger re-boots now instead of at its retry
            // interval; the operator does not wait for that.
            if shared.registry.live(&id).is_some() {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let cmd = Command::Trigger {
                        message: "BootNotification".into(),
                        evse: None,
                    };
                    if let Err(e) = shared.registry.call(&id, cmd, shared.config.call_timeout()).await {
                        tracing::info!(charger = id, "could not trigger a boot after accept: {e}");
                    }
                });
            }
            Ok(r)
        }
        Request::ChargerRemove { id } => admin(shared, AdminOp::ChargerRemove { id }).await,
        Request::ChargerSetPassword { id, password, offline } => {
            super::security::set_password(shared, id, password, offline).await
        }
        Request::ChargerSetProfile { id, profile } => super::security::set_profile(shared, id, profile).await,
        Request::ChargerCertList { id } => super::security::cert_list(shared, &id).await,
        Request::ChargerCertInstall { id, kind, pem } => super::security::cert_install(shared, &id, kind, pem).await,
        Request::ChargerCertDelete { id, serial } => super::security::cert_delete(shared, &id, &serial).await,
        Request::ChargerCertRenew { id } => super::security::cert_renew(shared, &id).await,
        Request::CertIssued { charger } => Ok(json!(store.issued_certs(charger.as_deref()).map_err(internal)?)),
        Request::CaCertificate => super::security::ca_certificate(shared),
        Request::PncStatus => super::pnc::status(shared),
        Request::PncIssue { emaid } => super::pnc::issue(shared, &emaid).await,
        Request::CertRevoke { serial, cancelled } => super::pnc::revoke(shared, serial, cancelled).await,
        Request::ChargerCommand { id, command: cmd } => {
            super::ops::check_trigger(shared, &id, &cmd)?;
            let r = command(shared, &id, cmd.clone()).await?;
            super::billing::capture_meter_keys(shared, &id, &r).await;
            super::ops::after_command(shared, &id, &cmd, &r).await?;
            super::device::capture_values(shared, &id, &cmd, &r, None).await;
            Ok(json!(r))
        }
        Request::ChargerLogs { id, since, limit, .. } => {
            if store.charger(&id).map_err(internal)?.is_none() {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {id}")));
            }
            Ok(json!(store.journal(&id, since, limit).map_err(internal)?))
        }
        Request::TokenList => Ok(json!(store.tokens().map_err(internal)?)),
        Request::TokenAdd(t) => {
            if t.uid.is_empty() || t.uid.len() > 36 {
                return Err(invalid("uid", "must be 1 to 36 characters (OCPP IdToken)"));
            }
            let token = Token {
                uid: t.uid,
                kind: t.kind,
                group: t.group,
                blocked: false,
                expires: t.expires,
                note: t.note,
                created_at: Utc::now(),
            };
            let r = admin(shared, AdminOp::TokenAdd(token)).await?;
            super::local_list::tokens_changed(shared);
            Ok(r)
        }
        Request::TokenBlock { uid, blocked } => {
            let r = admin(shared, AdminOp::TokenBlocked { uid, blocked }).await?;
            super::local_list::tokens_changed(shared);
            Ok(r)
        }
        Request::TokenRemove { uid } => {
            let r = admin(shared, AdminOp::TokenRemove { uid }).await?;
            super::local_list::tokens_changed(shared);
            Ok(r)
        }
        Request::SiteList => Ok(json!(store.sites().map_err(internal)?)),
        Request::SiteAdd { name, timezone, access } => {
            if timezone.parse::<chrono_tz::Tz>().is_err() {
                return Err(invalid(
                    "timezone",
                    format!("{timezone:?} is not an IANA time zone such as Europe/Berlin"),
                ));
            }
            admin(
                shared,
                AdminOp::SiteAdd(Site {
                    name,
                    timezone,
                    access,
                    rules: vec![],
                    created_at: Utc::now(),
                }),
            )
            .await
        }
        Request::SiteAllow {
            name,
            groups,
            days,
            from,
            to,
        } => {
            if from.is_some() != to.is_some() {
                return Err(invalid("window", "give both ends, e.g. 08:00-18:00"));
            }
            let r = admin(
                shared,
                AdminOp::SiteRule {
                    site: name,
                    rule: Some(AccessRule { groups, days, from, to }),
                },
            )
            .await?;
            // Who the site admits decides what chargers' local lists hold.
            super::local_list::tokens_changed(shared);
            Ok(r)
        }
        Request::SiteClearRules { name } => {
            let r = admin(shared, AdminOp::SiteRule { site: name, rule: None }).await?;
            super::local_list::tokens_changed(shared);
            Ok(r)
        }
        Request::SessionList { charger, status, limit } => {
            let f = SessionFilter { charger, status, limit };
            let list = store.sessions_with_bills(&f).map_err(internal)?;
            Ok(json!(super::billing::views(shared, list, None, Utc::now())?))
        }
        Request::SessionShow { id } => match store.session(id).map_err(internal)? {
            Some(s) => {
                let samples = store.samples(id).map_err(internal)?;
                let bill = store.bill(id).map_err(internal)?;
                let ev = super::device::ev_view(shared, &s)?;
                let views = super::billing::views(shared, vec![(s, bill)], Some(samples), Utc::now())?;
                let mut v = json!(views.first());
                v["ev"] = ev;
                Ok(v)
            }
            None => Err(ApiError::new(ErrorKind::NotFound, format!("no session {id}"))),
        },
        Request::SessionStart { charger, token, evse } => {
            let remote_start_id = (Utc::now().timestamp_millis() % i64::from(i32::MAX)).max(1);
            let cmd = Command::RemoteStart {
                token,
                evse,
                remote_start_id,
            };
            command(shared, &charger, cmd).await.map(|r| json!(r))
        }
        Request::SessionStop { id } => {
            let Some(s) = store.session(id).map_err(internal)? else {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no session {id}")));
            };
            if s.status != crate::domain::SessionStatus::Active {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!("session {id} has already ended"),
                ));
            }
            let charger = s.charger.clone();
            command(shared, &charger, Command::RemoteStop { session: Box::new(s) })
                .await
                .map(|r| json!(r))
        }
        Request::Events { limit } => Ok(json!(store.events(limit).map_err(internal)?)),
        Request::CircuitList => Ok(json!(store.circuits().map_err(internal)?)),
        Request::MeterList => {
            let metered: Vec<_> = store
                .circuits()
                .map_err(internal)?
                .into_iter()
                .filter_map(|c| c.meter.map(|m| json!({"circuit": c.id, "site": c.site, "meter": m})))
                .collect();
            Ok(json!(metered))
        }
        Request::PriceList { site } => Ok(json!(store.prices(&site).map_err(internal)?)),
        Request::DlmStatus => Ok(json!(shared.load.view())),
        Request::DlmClearLimit { charger, evse, source } => {
            if store.charger(&charger).map_err(internal)?.is_none() {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {charger}")));
            }
            let op = crate::store::DeviceOp::LimitsLifted { charger, evse, source };
            let r = admin(shared, AdminOp::Device(op)).await;
            shared.load.signal(Signal::Changed { charger: None });
            r
        }
        Request::MeterPush { circuit, current, at } => {
            circuit::check_amps_signed("current", &current).map_err(|e| invalid(&e.field, e.reason))?;
            let Some(c) = store
                .circuits()
                .map_err(internal)?
                .into_iter()
                .find(|c| c.id == circuit)
            else {
                return Err(ApiError::new(ErrorKind::NotFound, format!("no circuit {circuit}")));
            };
            if !matches!(c.meter.as_ref().map(|m| &m.source), Some(MeterSource::Push)) {
                return Err(ApiError::new(
                    ErrorKind::Conflict,
                    format!("circuit {circuit} has no pushed meter; first run: voltyard meter bind {circuit} push"),
                ));
            }
            let t = at.unwrap_or_else(Utc::now);
            shared.load.signal(Signal::CircuitMeter { circuit, current, t });
            Ok(json!({}))
        }
        billing @ (Request::TariffSet { .. }
        | Request::TariffList
        | Request::TariffShow { .. }
        | Request::TariffUnassign { .. }
        | Request::TariffRemove { .. }
        | Request::SessionReprice { .. }
        | Request::SessionCdr { .. }
        | Request::Receipt { .. }
        | Request::ChargerSetMeterKey { .. }) => super::billing::handle(shared, billing).await,
        ops @ (Request::LocalListSync { .. }
        | Request::LocalListVersion { .. }
        | Request::ReservationAdd { .. }
        | Request::ReservationList { .. }
        | Request::ReservationCancel { .. }
        | Request::ChargerAvailability { .. }
        | Request::ChargerTxStatus { .. }
        | Request::ChargerMessageSet { .. }
        | Request::ChargerMessageList { .. }) => super::ops::handle(shared, ops).await,
        transfer @ (Request::FirmwareAdd { .. }
        | Request::FirmwareUpdate { .. }
        | Request::FirmwareStatus { .. }
        | Request::CampaignStart { .. }
        | Request::CampaignList
        | Request::CampaignShow { .. }
        | Request::CampaignCancel { .. }
        | Request::LogsFetch { .. }
        | Request::LogsUploads { .. }
        | Request::DataTransfers { .. }) => super::transfer::handle(shared, transfer).await,
        device @ (Request::ChargerReport { .. }
        | Request::ChargerVariables { .. }
        | Request::ChargerReportStatus { .. }
        | Request::MonitorSet { .. }
        | Request::MonitorReport { .. }
        | Request::MonitorList { .. }
        | Request::MonitorClear { .. }
        | Request::MonitoringBase { .. }
        | Request::MonitoringLevel { .. }) => super::device::handle(shared, device).await,
        Request::Watch { .. } => Err(ApiError::new(
            ErrorKind::Internal,
            "watch is a stream and is served by the connection loop",
        )),
        load @ (Request::CircuitAdd { .. }
        | Request::CircuitSetLimit { .. }
        | Request::CircuitRemove { .. }
        | Request::MeterBind { .. }
        | Request::PriceImport { .. }
        | Request::SessionSetTarget { .. }) => {
            let op = load_op(shared, load)?;
            let r = admin(shared, AdminOp::Load(op)).await;
            shared.load.signal(Signal::Changed { charger: None });
            r
        }
    }
}

/// Operator changes to what load management works from, checked here so
/// that a bad field is named before anything is stored.
fn load_op(shared: &Shared, req: Request) -> Result<LoadOp, ApiError> {
    let bad = |e: circuit::Invalid| invalid(&e.field, e.reason);
    Ok(match req {
        Request::CircuitAdd {
            id,
            site,
            parent,
            max_current,
            phases,
        } => {
            circuit::check_id(&id).map_err(bad)?;
            circuit::check_amps("max_current", &max_current).map_err(bad)?;
            if phases != 1 && phases != 3 {
                return Err(invalid("phases", "must be 1 or 3"));
            }
            LoadOp::CircuitAdd(Box::new(Circuit {
                id,
                site,
                parent,
                max_current,
                phases,
                max_power_w: None,
                meter: None,
                safe_current: None,
                created_at: Utc::now(),
            }))
        }
        Request::CircuitSetLimit {
            id,
            max_current,
            safe_current,
            max_power_w,
        } => {
            for (field, v) in [("max_current", &max_current), ("safe_current", &safe_current)] {
                if let Some(v) = v {
                    circuit::check_amps(field, v).map_err(bad)?;
                }
            }
            if max_power_w.is_some_and(|w| !w.is_finite() || w < 0.0) {
                return Err(invalid("max_power", "must be a positive number of kW"));
            }
            LoadOp::CircuitLimit {
                id,
                max_current,
                safe_current,
                max_power_w,
            }
        }
        Request::CircuitRemove { id } => LoadOp::CircuitRemove { id },
        Request::MeterBind { circuit, meter } => {
            if let Some(m) = &meter {
                if m.timeout_s == 0 {
                    return Err(invalid("timeout", "must be at least 1 s"));
                }
                match &m.source {
                    MeterSource::Ocpp { charger } => {
                        if shared.store.charger(charger).map_err(internal)?.is_none() {
                            return Err(ApiError::new(ErrorKind::NotFound, format!("no charger {charger}")));
                        }
                    }
                    MeterSource::Modbus(mb) => {
                        if mb.address.parse::<std::net::SocketAddr>().is_err() {
                            return Err(invalid("address", "must be IP:PORT, e.g. 192.168.1.50:502"));
                        }
                        if mb.poll_ms < 100 {
                            return Err(invalid("poll", "must be at least 100 ms"));
                        }
                    }
                    MeterSource::Push => {}
                }
            }
            LoadOp::MeterBind { circuit, meter }
        }
        Request::PriceImport { site, slots } => {
            if slots.is_empty() {
                return Err(invalid("prices", "no price slots given"));
            }
            LoadOp::Prices { site, slots }
        }
        Request::SessionSetTarget {
            id,
            departure,
            energy_wh,
            priority,
        } => {
            if energy_wh.is_some_and(|e| e <= 0) {
                return Err(invalid("energy", "must be more than 0"));
            }
            if departure.is_none() && energy_wh.is_none() && priority.is_none() {
                return Err(invalid("target", "give --departure, --energy or --priority"));
            }
            LoadOp::SessionTarget {
                id,
                departure,
                energy_target_wh: energy_wh,
                priority,
            }
        }
        other => {
            return Err(ApiError::new(
                ErrorKind::Internal,
                format!("{other:?} is not a load change"),
            ));
        }
    })
}
