//! `xtask echo-server`: the yardstick. A bare tokio-tungstenite server that
//! sends every text or binary frame back unchanged: no parsing, no storage.
//! It is built like voltyard's listener (multi-threaded runtime, the same
//! WebSocketConfig buffers, TCP_NODELAY, the subprotocol echoed back) so
//! that the difference between the two is the OCPP work and the durable
//! store.

// tungstenite's handshake callback fixes the (large) error type.
#![allow(clippy::result_large_err)]

use super::sys::{Flags, raise_nofile};
use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub fn main(args: &[String]) -> Result<()> {
    let flags = Flags::parse(args, &[], &["listen"])?;
    let listen = flags.str("listen").unwrap_or("127.0.0.1:0").to_string();
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(&listen))
}

async fn serve(listen: &str) -> Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(listen.parse().with_context(|| format!("--listen {listen:?}"))?)?;
    // Same backlog as voltyard's default, for the same reason: a connect storm.
    let listener: TcpListener = socket.listen(4096)?;
    // The parent reads the port from this line.
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // Agree to the first subprotocol offered: clients that asked for one
    // refuse a handshake that names none.
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let offered = req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split(',').next())
            .map(|p| p.trim().to_string());
        if let Some(p) = offered.and_then(|p| HeaderValue::from_str(&p).ok()) {
            resp.headers_mut().insert("Sec-WebSocket-Protocol", p);
        }
        Ok(resp)
    };
    // voltyard's listener settings (src/ocpp/listener.rs).
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            return;
        }
        // Pings are answered by tungstenite itself.
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}
