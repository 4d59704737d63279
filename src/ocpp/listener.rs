//! Accepts TCP connections and performs the WebSocket handshake: the path
//! names the charger, the subprotocol picks the OCPP version, and unknown or
//! unauthenticated chargers are turned away with a clear HTTP status.

// tungstenite's handshake callback fixes the (large) error type.
#![allow(clippy::result_large_err)]

use super::connection;
use super::stream::{Rewind, read_head};
use crate::domain::{Charger, Protocol, Registration};
use crate::security::auth::{self, Verdict};
use crate::server::{Shared, UnknownChargers};
use crate::store::{AdminOp, AdminResult};
use chrono::Utc;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bind with a listen backlog sized for a reconnect storm (tokio's default
/// is 128; the kernel caps it at net.core.somaxconn).
pub fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    TcpListener::from_std(socket.into())
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                // The handshake's task ends once the connection has its own,
                // so an idle charger holds only the connection's state.
                let fut = async move {
                    let _ = stream.set_nodelay(true);
                    // Firmware downloads and log uploads share the port (plain HTTP).
                    match crate::files::http::sniff(&stream, shared.config.handshake_timeout()).await {
                        crate::files::http::Sniffed::Files => {
                            Box::pin(crate::files::http::serve(stream, shared)).await;
                            return;
                        }
                        crate::files::http::Sniffed::Silent => {
                            tracing::debug!(%peer, "nothing sent before the handshake timeout");
                            return;
                        }
                        crate::files::http::Sniffed::Other => {}
                    }
                    if let Some(conn) = Box::pin(accept(stream, peer, shared, Transport::Plain)).await {
                        tokio::spawn(conn.run());
                    }
                };
                tokio::spawn(fut);
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

/// The wss:// listener: the TLS handshake, then the same WebSocket
/// handshake and checks as on plain TCP, with what TLS established.
pub async fn serve_tls(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                let fut = async move {
                    let _ = stream.set_nodelay(true);
                    let Some(tls) = &shared.tls else { return };
                    let acceptor = tls.acceptor();
                    let tls_stream =
                        match tokio::time::timeout(shared.config.handshake_timeout(), acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::info!(%peer, "TLS handshake failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let names = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(crate::security::tls::peer_names);
                    let transport = Transport::Tls { client_names: names };
                    if let Some(conn) = Box::pin(accept(tls_stream, peer, shared.clone(), transport)).await {
                        tokio::spawn(conn.run());
                    }
                };
                tokio::spawn(fut);
            }
            Err(e) => accept_failed(e).await,
        }
    }
}

async fn accept_failed(e: std::io::Error) {
    // Out of file descriptors and the like: back off, keep serving.
    tracing::warn!("accept failed: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// How a connection reached us, for the security-profile checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Plain,
    /// `client_names`: the names of a verified client certificate, if one was presented.
    Tls {
        client_names: Option<Vec<String>>,
    },
}

impl Transport {
    /// The highest security profile this transport can satisfy (profile 1
    /// also needs the password, checked separately).
    fn profile(&self) -> u8 {
        match self {
            Transport::Plain => 1,
            Transport::Tls { client_names: None } => 2,
            Transport::Tls { client_names: Some(_) } => 3,
        }
    }
}

struct Admitted {
    id: String,
    proto: Protocol,
}

/// A charger past the handshake and admission, ready to serve.
struct Accepted<S> {
    ws: tokio_tungstenite::WebSocketStream<Rewind<S>>,
    id: String,
    proto: Protocol,
    shared: Arc<Shared>,
    reg: super::registry::Registration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Accepted<S> {
    fn run(self) -> impl Future<Output = ()> {
        connection::run(self.ws, self.id, self.proto, self.shared, self.reg)
    }
}

async fn accept<S>(mut stream: S, peer: SocketAddr, shared: Arc<Shared>, transport: Transport) -> Option<Accepted<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cfg = &shared.config;
    // The transport refuses anything far beyond the application limit; frames
    // in between get a CALLERROR from the connection instead of a hang-up.
    let hard_limit = cfg.max_message_bytes.saturating_mul(16).max(4 << 20);
    // tungstenite's defaults (128 KiB read and write buffers) would cost
    // ~136 KiB of RSS per idle charger. OCPP frames are small: a 2 KiB read
    // buffer (a 10-value MeterValues is 1.2 KB; 4 KiB cost 2.5 KiB more per
    // idle charger) grows when a frame needs it, and frames are written
    // straight out (one frame per send, so nothing to coalesce).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0)
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit));
    let deadline = tokio::time::Instant::now() + cfg.handshake_timeout();
    // The password is checked before tungstenite's (synchronous) handshake
    // callback: Argon2 must not run on the async runtime.
    let (bytes, head) = match tokio::time::timeout_at(deadline, read_head(&mut stream)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "bad handshake request: {e}");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return None;
        }
    };
    // The charger's row, read once for the password check and the handshake.
    let mut known = None;
    let mut verdict = Verdict::NotNeeded;
    if let Some(id) = head.path.strip_prefix("/ocpp/").map(percent_decode)
        && valid_id(&id)
        && let Ok(row) = shared.store.charger(&id)
    {
        // Security profile 3: the client certificate (bound to the id in
        // `admit`) authenticates; no password is asked for.
        if let Some(ch) = &row
            && transport.profile() < 3
        {
            let check = auth::check(&shared, ch, peer.ip(), head.authorization.as_deref());
            verdict = tokio::time::timeout_at(deadline, check)
                .await
                .unwrap_or(Verdict::Missing);
        }
        known = Some((id, row));
    }
    let mut admitted = None;
    let mut refusal = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        match admit(req, resp, &shared, known.take(), &verdict, &transport) {
            Ok((a, resp)) => {
                admitted = Some(a);
                Ok(resp)
            }
            Err((resp, why)) => {
                refusal = why;
                Err(resp)
            }
        }
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(Rewind::new(bytes, stream), callback, Some(ws_config));
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "handshake refused or failed: {e}");
            if let Some((id, detail)) = refusal {
                tracing::warn!(charger = id, %peer, "{detail}");
                auth::record(&shared, &id, "security_refused", format!("{detail} (from {peer})")).await;
            }
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "handshake timed out");
            return None;
        }
    };
    let Admitted { id, proto } = admitted?;
    let create_as = match cfg.unknown_chargers {
        UnknownChargers::Pending => Some(Registration::Pending),
        UnknownChargers::Accept => Some(Registration::Accepted),
        UnknownChargers::Reject => None,
    };
    match shared
        .store
        .admin(
            AdminOp::Connected {
                id: id.clone(),
                protocol: proto,
                create_as,
            },
            Utc::now(),
        )
        .await
    {
        Ok(AdminResult::Charger(Some(_))) => {}
        other => {
            tracing::warn!(charger = id, "could not record connection: {other:?}");
            return None;
        }
    }
    tracing::info!(charger = id, %peer, protocol = %proto, "connected");
    let reg = shared.registry.register(&id, proto, Utc::now());
    Some(Accepted {
        ws,
        id,
        proto,
        shared,
        reg,
    })
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(format!("{why}\n")));
    *r.status_mut() = status;
    r
}

/// A refused handshake, with what to record about it (charger, detail)
/// when the refusal is a security matter.
type Refused = (ErrorResponse, Option<(String, String)>);

fn admit(
    req: &Request,
    mut resp: Response,
    shared: &Shared,
    read_before: Option<(String, Option<Charger>)>,
    verdict: &Verdict,
    transport: &Transport,
) -> Result<(Admitted, Response), Refused> {
    let path = req.uri().path();
    let id = path
        .strip_prefix("/ocpp/")
        .map(percent_decode)
        .filter(|id| valid_id(id))
        .ok_or_else(|| {
            refuse(
                StatusCode::NOT_FOUND,
                "charge points connect to /ocpp/{chargePointId} (1 to 48 printable characters, no '/')",
            )
        })
        .map_err(|r| (r, None))?;
    let offered: Vec<&str> = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    // Prefer the newest version both sides speak.
    let proto = [Protocol::V201, Protocol::V16]
        .into_iter()
        .find(|p| offered.contains(&p.subprotocol()))
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                &format!(
                    "no supported OCPP subprotocol offered (got {offered:?}); this server speaks ocpp2.0.1, ocpp1.6"
                ),
            )
        })
        .map_err(|r| (r, None))?;
    // A client certificate speaks for one charger only, whatever its profile.
    if let Transport::Tls {
        client_names: Some(names),
    } = transport
        && !names.contains(&id)
    {
        let detail = format!("client certificate for {names:?} used to connect as {id}");
        return Err((
            refuse(StatusCode::FORBIDDEN, "the client certificate is not this charger's"),
            Some((id, detail)),
        ));
    }
    let known = match read_before {
        Some((read_id, row)) if read_id == id => row,
        _ => shared.store.charger(&id).map_err(|e| {
            tracing::error!("store read failed during handshake: {e}");
            (
                refuse(StatusCode::SERVICE_UNAVAILABLE, "server storage unavailable"),
                None,
            )
        })?,
    };
    match &known {
        None if shared.config.unknown_chargers == UnknownChargers::Reject => {
            return Err((
                refuse(StatusCode::NOT_FOUND, &format!("charger {id} is not registered")),
                None,
            ));
        }
        Some(ch) if ch.registration == Registration::Rejected => {
            return Err((
                refuse(StatusCode::FORBIDDEN, &format!("charger {id} is rejected")),
                None,
            ));
        }
        Some(ch) => {
            check_profile(ch, transport)?;
            check_password(ch, verdict)?;
        }
        None => {}
    }
    resp.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(proto.subprotocol()));
    Ok((Admitted { id, proto }, resp))
}

/// A charger must connect with at least the security profile set for it.
fn check_profile(ch: &Charger, transport: &Transport) -> Result<(), Refused> {
    if transport.profile() >= ch.security_profile {
        return Ok(());
    }
    let (status, what) = match ch.security_profile {
        3 => (
            StatusCode::FORBIDDEN,
            "TLS with a client certificate (security profile 3)",
        ),
        _ => (StatusCode::FORBIDDEN, "TLS (security profile 2)"),
    };
    let detail = format!(
        "refused a profile {} connection: charger {} must use {what}",
        transport.profile(),
        ch.id
    );
    Err((
        refuse(status, &format!("charger {} must connect with {what}", ch.id)),
        Some((ch.id.clone(), detail)),
    ))
}

/// Security profile 1: HTTP Basic with the charger id as user name,
/// verified before the handshake (`auth::check`).
fn check_password(ch: &Charger, verdict: &Verdict) -> Result<(), Refused> {
    let unauthorized = || {
        let mut r = refuse(StatusCode::UNAUTHORIZED, "this charger needs HTTP Basic authentication");
        r.headers_mut()
            .insert("WWW-Authenticate", HeaderValue::from_static("Basic realm=\"voltyard\""));
        r
    };
    match verdict {
        Verdict::NotNeeded | Verdict::Ok => Ok(()),
        Verdict::Missing => Err((unauthorized(), None)),
        // Recorded as auth_failed already.
        Verdict::Wrong => Err((unauthorized(), None)),
        Verdict::Throttled(secs) => {
            let mut r = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many failed passwords for charger {}; retry later", ch.id),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert("Retry-After", v);
            }
            Err((r, None))
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.chars().count() <= 48 && id.chars().all(|c| c.is_ascii_graphic() && c != '/')
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
