//! The wire side of one virtual charger: connect, speak OCPP-J (one CALL in
//! flight, as the spec wants), answer the server, reconnect with backoff,
//! replay what was queued while offline.

use super::charger::{Charger, Clock, Out};
use super::stats::Stats;
use super::transfer::Job;
use crate::ocpp::Rejection;
use crate::ocpp::frame::{self, ErrorCode, Frame};
use crate::ocpp::schema::{self, Part};
use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub struct LinkOptions {
    /// `ws://host:port/ocpp`; the charger id is appended.
    pub url: String,
    /// Check every frame we send (and the server's answers) against the
    /// OCA schemas; violations are counted as errors.
    pub validate: bool,
    pub call_timeout: Duration,
    pub credentials: super::security::Credentials,
}

enum Ended {
    Stop,
    Lost,
    /// Go offline for this long (a reset, or a charger that drops out).
    Offline(Duration),
}

fn clock() -> Clock {
    Clock {
        now: Instant::now(),
        wall: Utc::now(),
    }
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}

pub async fn run(mut ch: Charger, opts: Arc<LinkOptions>, start_after: Duration, mut stop: watch::Receiver<bool>) {
    if pause(start_after, &mut stop).await {
        return;
    }
    let mut backoff = Duration::from_secs(1);
    // Transfers outlive a connection: results wait here for the next one.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut jobs = Jobs {
        done_tx,
        done_rx: &mut done_rx,
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let ws = match connect(&ch, &opts).await {
            Ok(ws) => ws,
            Err(e) => {
                Stats::add(&ch.stats.connect_failures, 1);
                ch.stats.error(format!("connect {}: {e}", ch.plan.id));
                if pause(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_secs(1);
        Stats::add(&ch.stats.connects, 1);
        Stats::gauge(&ch.stats.connected, 1);
        Stats::add(&ch.stats.replayed, ch.queued() as u64);
        ch.on_connect();
        let ended = session(&mut ch, ws, &opts, &mut stop, &mut jobs).await;
        Stats::gauge(&ch.stats.connected, -1);
        match ended {
            Ended::Stop => return,
            Ended::Lost => {
                Stats::add(&ch.stats.disconnects, 1);
                if pause(backoff, &mut stop).await {
                    return;
                }
            }
            Ended::Offline(d) => {
                Stats::add(&ch.stats.disconnects, 1);
                if pause(d, &mut stop).await {
                    return;
                }
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<super::security::SimStream>;

async fn connect(ch: &Charger, opts: &LinkOptions) -> Result<Ws, String> {
    let url = format!("{}/{}", opts.url.trim_end_matches('/'), ch.plan.id);
    let mut req = url.as_str().into_client_request().map_err(|e| e.to_string())?;
    let proto = ch.proto().subprotocol();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(proto));
    let cfg = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    if let Some(pw) = ch.password(&opts.credentials) {
        let basic = data_encoding::BASE64.encode(format!("{}:{pw}", ch.plan.id).as_bytes());
        let value = HeaderValue::from_str(&format!("Basic {basic}")).map_err(|e| e.to_string())?;
        req.headers_mut().insert("Authorization", value);
    }
    let tls = req.uri().scheme_str() == Some("wss");
    let host = req.uri().host().unwrap_or("localhost").to_string();
    let port = req.uri().port_u16().unwrap_or(if tls { 443 } else { 80 });
    let fut = async {
        let stream = super::security::open(&host, port, tls, ch, &opts.credentials).await?;
        tokio_tungstenite::client_async_with_config(req, stream, Some(cfg))
            .await
            .map_err(|e| e.to_string())
    };
    let (ws, resp) = tokio::time::timeout(Duration::from_secs(15), fut)
        .await
        .map_err(|_| "handshake timed out".to_string())??;
    let agreed = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok());
    if agreed != Some(proto) {
        return Err(format!("server agreed to subprotocol {agreed:?}, we asked for {proto}"));
    }
    Ok(ws)
}

struct InFlight {
    id: String,
    out: Out,
    deadline: Instant,
}

type JobResult = (Job, Result<Vec<u8>, String>);

/// Firmware downloads and log uploads run as tasks and report back here.
struct Jobs<'a> {
    done_tx: tokio::sync::mpsc::UnboundedSender<JobResult>,
    done_rx: &'a mut tokio::sync::mpsc::UnboundedReceiver<JobResult>,
}

impl Jobs<'_> {
    fn start(&self, ch: &mut Charger) {
        for job in ch.take_jobs() {
            let tx = self.done_tx.clone();
            tokio::spawn(async move {
                let result = super::http::run(&job).await;
                let _ = tx.send((job, result));
            });
        }
    }
}

async fn session(
    ch: &mut Charger,
    ws: Ws,
    opts: &LinkOptions,
    stop: &mut watch::Receiver<bool>,
    jobs: &mut Jobs<'_>,
) -> Ended {
    let (mut sink, mut stream) = ws.split();
    let mut in_flight: Option<InFlight> = None;
    let mut next_id = 0u64;
    loop {
        if ch.reboot_due(Instant::now(), in_flight.is_none()) {
            let _ = sink.close().await;
            ch.on_disconnect(in_flight.map(|f| f.out));
            ch.rebooted();
            return Ended::Offline(Duration::from_secs(2));
        }
        if let Some(d) = ch.drop_for.take() {
            // Dropping out: no close handshake, the socket just dies.
            drop(sink);
            ch.on_disconnect(in_flight.map(|f| f.out));
            return Ended::Offline(d);
        }
        if in_flight.is_none()
            && let Some(out) = ch.next_out(clock())
        {
            next_id += 1;
            let id = next_id.to_string();
            if opts.validate
                && let Err(v) = schema::validate(ch.proto(), out.action, Part::Request, &out.payload)
            {
                Stats::add(&ch.stats.schema_violations, 1);
                ch.stats.error(format!("simulator sent an invalid {}: {v}", out.action));
            }
            let text = frame::call(&id, out.action, &out.payload);
            if sink.send(Message::text(text)).await.is_err() {
                ch.on_disconnect(Some(out));
                return Ended::Lost;
            }
            Stats::add(&ch.stats.sent, 1);
            in_flight = Some(InFlight {
                id,
                out,
                deadline: Instant::now() + opts.call_timeout,
            });
            continue;
        }
        let mut wake = ch.next_wakeup();
        if let Some(f) = &in_flight {
            wake = wake.min(f.deadline);
        }
        tokio::select! {
            _ = stop.changed() => {
                let _ = sink.close().await;
                return Ended::Stop;
            }
            Some((job, result)) = jobs.done_rx.recv() => ch.job_done(job, result, clock()),
            _ = tokio::time::sleep_until(wake.into()) => {
                if in_flight.as_ref().is_some_and(|f| Instant::now() >= f.deadline)
                    && let Some(f) = in_flight.take()
                {
                    Stats::add(&ch.stats.timeouts, 1);
                    ch.stats.error(format!("{}: no answer to {} within {:?}", ch.plan.id, f.out.action, opts.call_timeout));
                    // An unanswered CALL means a broken link: reconnect and replay.
                    let _ = sink.close().await;
                    ch.on_disconnect(Some(f.out));
                    return Ended::Lost;
                }
                ch.tick(clock());
            }
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        ch.on_disconnect(in_flight.map(|f| f.out));
                        return Ended::Lost;
                    }
                    Some(Ok(_)) => continue,
                };
                Stats::add(&ch.stats.received, 1);
                match frame::parse(text.as_str()) {
                    Ok(Frame::Call { id, action, payload }) => {
                        let reply = answer(ch, &action, &payload, opts, &id);
                        jobs.start(ch);
                        if sink.send(Message::text(reply)).await.is_err() {
                            ch.on_disconnect(in_flight.map(|f| f.out));
                            return Ended::Lost;
                        }
                        Stats::add(&ch.stats.sent, 1);
                    }
                    Ok(Frame::Result { id, payload }) => {
                        if let Some(f) = in_flight.take_if(|f| f.id == id) {
                            if opts.validate
                                && let Err(v) = schema::validate(ch.proto(), f.out.action, Part::Response, &payload)
                            {
                                Stats::add(&ch.stats.schema_violations, 1);
                                ch.stats.error(format!("server answered {} with an invalid payload: {v}", f.out.action));
                            }
                            ch.on_result(f.out.purpose, &payload, clock());
                        }
                    }
                    Ok(Frame::Error { id, code, description, .. }) => {
                        if let Some(f) = in_flight.take_if(|f| f.id == id) {
                            Stats::add(&ch.stats.call_errors_received, 1);
                            ch.stats.error(format!("server refused {}: {code} {description}", f.out.action));
                            ch.on_failure(f.out.purpose, clock());
                        }
                    }
                    Err(e) => ch.stats.error(format!("{}: unreadable frame from the server: {e}", ch.plan.id)),
                }
            }
        }
    }
}

/// The CALLRESULT or CALLERROR text for one server CALL.
fn answer(ch: &mut Charger, action: &str, payload: &Value, opts: &LinkOptions, id: &str) -> String {
    let proto = ch.proto();
    let result = if !schema::knows(proto, action) {
        Err(Rejection::new(
            ErrorCode::NotImplemented,
            format!("unknown action {action}"),
        ))
    } else {
        schema::validate(proto, action, Part::Request, payload)
            .map_err(Rejection::from)
            .and_then(|()| ch.handle_call(action, payload, clock()))
    };
    match result {
        Ok(reply) => {
            if opts.validate
                && let Err(v) = schema::validate(proto, action, Part::Response, &reply)
            {
                Stats::add(&ch.stats.schema_violations, 1);
                ch.stats
                    .error(format!("simulator answered {action} with an invalid payload: {v}"));
            }
            frame::result(id, &reply)
        }
        Err(r) => {
            Stats::add(&ch.stats.call_errors_sent, 1);
            frame::error(proto, id, r.code, &r.description, json!({}))
        }
    }
}
