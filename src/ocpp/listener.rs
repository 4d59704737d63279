//! Accepts TCP connections and performs the WebSocket handshake: the path
//! names the charger, the subprotocol picks the OCPP version, and unknown or
//! unauthenticated chargers are turned away with a clear HTTP status.

// tungstenite's handshake callback fixes the (large) error type.
#![allow(clippy::result_large_err)]

use super::connection;
use crate::domain::{Charger, Protocol, Registration};
use crate::server::{Shared, UnknownChargers};
use crate::store::{AdminOp, AdminResult};
use chrono::Utc;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
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
                // The handshake's state is boxed and freed once it is done,
                // so an idle charger's task holds only the connection's.
                let fut = async move {
                    if let Some(conn) = Box::pin(accept(stream, peer, shared)).await {
                        conn.run().await;
                    }
                };
                tokio::spawn(fut);
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

struct Admitted {
    id: String,
    proto: Protocol,
}

/// A charger past the handshake and admission, ready to serve.
struct Accepted {
    ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    id: String,
    proto: Protocol,
    shared: Arc<Shared>,
    reg: super::registry::Registration,
}

impl Accepted {
    async fn run(self) {
        connection::run(self.ws, self.id, self.proto, self.shared, self.reg).await;
    }
}

async fn accept(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> Option<Accepted> {
    let _ = stream.set_nodelay(true);
    let cfg = &shared.config;
    // Firmware downloads and log uploads share the port (plain HTTP).
    match crate::files::http::sniff(&stream, cfg.handshake_timeout()).await {
        crate::files::http::Sniffed::Files => {
            Box::pin(crate::files::http::serve(stream, shared.clone())).await;
            return None;
        }
        crate::files::http::Sniffed::Silent => {
            tracing::debug!(%peer, "nothing sent before the handshake timeout");
            return None;
        }
        crate::files::http::Sniffed::Other => {}
    }
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
    let mut admitted = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let (a, resp) = admit(req, resp, &shared)?;
        admitted = Some(a);
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config));
    let ws = match tokio::time::timeout(cfg.handshake_timeout(), handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "handshake refused or failed: {e}");
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

fn admit(req: &Request, mut resp: Response, shared: &Shared) -> Result<(Admitted, Response), ErrorResponse> {
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
        })?;
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
        })?;
    let known = shared.store.charger(&id).map_err(|e| {
        tracing::error!("store read failed during handshake: {e}");
        refuse(StatusCode::SERVICE_UNAVAILABLE, "server storage unavailable")
    })?;
    match &known {
        None if shared.config.unknown_chargers == UnknownChargers::Reject => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                &format!("charger {id} is not registered"),
            ));
        }
        Some(ch) if ch.registration == Registration::Rejected => {
            return Err(refuse(StatusCode::FORBIDDEN, &format!("charger {id} is rejected")));
        }
        Some(ch) => check_password(req, ch)?,
        None => {}
    }
    resp.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(proto.subprotocol()));
    Ok((Admitted { id, proto }, resp))
}

/// Security profile 1: HTTP Basic with the charger id as user name.
fn check_password(req: &Request, ch: &Charger) -> Result<(), ErrorResponse> {
    let Some(hash) = &ch.password_hash else {
        return Ok(());
    };
    let unauthorized = || {
        let mut r = refuse(StatusCode::UNAUTHORIZED, "this charger needs HTTP Basic authentication");
        r.headers_mut()
            .insert("WWW-Authenticate", HeaderValue::from_static("Basic realm=\"voltyard\""));
        r
    };
    let creds = req
        .headers()
        .get("Authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| data_encoding::BASE64.decode(b.trim().as_bytes()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(unauthorized)?;
    let (user, password) = creds.split_once(':').ok_or_else(unauthorized)?;
    if user != ch.id || !crate::domain::password::verify(password, hash) {
        return Err(unauthorized());
    }
    Ok(())
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
