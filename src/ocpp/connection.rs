//! One task per connected charger: reads frames, answers CALLs after their
//! effect is durable, sends our CALLs one at a time, keeps the socket alive
//! and notices when it is dead.

use super::frame::{self, ErrorCode, FrameError, RawFrame};
use super::registry::{CALL_QUEUE, CallError, CallRequest, Registration};
use super::schema::{self, Part};
use super::throttle::Throttle;
use crate::domain::Direction;
use crate::domain::Protocol;
use crate::domain::message::{Command, CommandResult, Inbound, Reply};
use crate::server::Shared;
use crate::store::{AdminOp, Applied};
use chrono::Utc;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

struct Pending {
    id: String,
    action: &'static str,
    req: CallRequest,
    deadline: Instant,
}

/// Journal at most this much of an oversized frame.
const JOURNAL_CLIP: usize = 1024;

pub fn run<S>(
    ws: WebSocketStream<S>,
    charger: String,
    proto: Protocol,
    shared: Arc<Shared>,
    reg: Registration,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Split before the future exists, so every idle charger's task does not
    // also carry room for the unsplit stream.
    let (sink, stream) = ws.split();
    serve(sink, stream, charger, proto, shared, reg)
}

async fn serve<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut stream: SplitStream<WebSocketStream<S>>,
    charger: String,
    proto: Protocol,
    shared: Arc<Shared>,
    reg: Registration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Awaits that are rare or large (journaling a call, throttling, the
    // close, the disconnect) are boxed: every idle charger's task would
    // otherwise hold room for the largest of them (decision 70).
    let cfg = &shared.config;
    let Registration {
        generation,
        mut calls,
        mut replaced,
        last_seen,
    } = reg;
    // Unregister even if this task unwinds, so a charger never looks online
    // through a connection that no longer exists.
    let registered = Unregister {
        shared: &shared,
        charger: &charger,
        generation,
    };
    let mut queue: VecDeque<CallRequest> = VecDeque::new();
    let mut pending: Option<Pending> = None;
    let mut next_id: u64 = 0;
    let mut ping = tokio::time::interval(cfg.ping_interval());
    ping.reset();
    // One timer for the idle timeout, moved on only when it fires: making
    // a new one for every frame cost a timer-wheel insert and removal per
    // message.
    let mut last_frame = Instant::now();
    let idle = tokio::time::sleep_until(last_frame + cfg.idle_timeout());
    tokio::pin!(idle);
    let mut throttle = Throttle::new(cfg.max_messages_per_s, cfg.message_burst, Instant::now());
    let close_reason;

    loop {
        if pending.is_none()
            && let Some(req) = queue.pop_front()
        {
            match super::encode_command(proto, &req.cmd) {
                Ok((action, payload)) => {
                    next_id += 1;
                    let id = format!("vy{next_id}");
                    let text = frame::call(&id, action, &payload);
                    let journaled = match super::redacted(&req.cmd, &payload) {
                        Some(p) => frame::call(&id, action, &p),
                        None => text.clone(),
                    };
                    Box::pin(
                        shared
                            .store
                            .record_frame(&charger, Direction::Out, journaled, Utc::now()),
                    )
                    .await;
                    if sink.send(Message::text(text)).await.is_err() {
                        let _ = req.reply.send(Err(CallError::Closed));
                        close_reason = "send failed";
                        break;
                    }
                    pending = Some(Pending {
                        id,
                        action,
                        req,
                        deadline: Instant::now() + cfg.call_timeout(),
                    });
                }
                Err(e) => {
                    let _ = req.reply.send(Err(CallError::Invalid(e)));
                }
            }
            continue;
        }
        let call_deadline = pending.as_ref().map(|p| p.deadline);
        tokio::select! {
            msg = stream.next() => {
                let now = Utc::now();
                last_seen.store(now.timestamp_millis(), Ordering::Relaxed);
                last_frame = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: its state lives only while a frame is handled,
                        // not in every idle charger's task.
                        let outcome = Box::pin(handle_text(text.as_str(), &charger, proto, &shared, &mut pending)).await;
                        for f in outcome.followups {
                            queue.push_back(f);
                        }
                        if let Some(reply) = outcome.reply {
                            if !outcome.journaled {
                                Box::pin(shared.store.record_frame(&charger, Direction::Out, reply.clone(), Utc::now())).await;
                            }
                            if sink.send(Message::text(reply)).await.is_err() {
                                close_reason = "send failed";
                                break;
                            }
                        }
                        if let Some(th) = throttle.as_mut()
                            && let Some(wait) = th.take(Instant::now())
                        {
                            if !th.throttled {
                                th.throttled = true;
                                shared.throttled.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(charger, "sends more than {} messages a second: slowed down", cfg.max_messages_per_s);
                            }
                            Box::pin(tokio::time::sleep(wait)).await;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        tracing::debug!(charger, "binary frame ignored: OCPP-J is text only");
                    }
                    Some(Ok(Message::Close(_))) | None => { close_reason = "closed by charger"; break; }
                    Some(Ok(_)) => {} // ping (auto-answered), pong, raw frames
                    Some(Err(e)) => {
                        tracing::info!(charger, "websocket error: {e}");
                        close_reason = "websocket error";
                        break;
                    }
                }
            }
            Some(req) = calls.recv() => {
                if queue.len() >= CALL_QUEUE {
                    let _ = req.reply.send(Err(CallError::Busy(charger.clone())));
                } else {
                    queue.push_back(req);
                }
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    close_reason = "ping failed";
                    break;
                }
            }
            _ = &mut idle => {
                let deadline = last_frame + cfg.idle_timeout();
                if deadline > Instant::now() {
                    idle.as_mut().reset(deadline);
                    continue;
                }
                tracing::info!(charger, "no frame for {:?}; closing dead connection", cfg.idle_timeout());
                close_reason = "idle timeout";
                break;
            }
            _ = sleep_until(call_deadline.unwrap_or_else(Instant::now)), if call_deadline.is_some() => {
                if let Some(p) = pending.take() {
                    let _ = p.req.reply.send(Err(CallError::Timeout(cfg.call_timeout().as_secs())));
                }
            }
            _ = &mut replaced => {
                let close = Message::Close(Some(CloseFrame {
                    code: CloseCode::Policy,
                    reason: "replaced by a newer connection".into(),
                }));
                let _ = Box::pin(sink.send(close)).await;
                close_reason = "replaced";
                break;
            }
        }
    }

    tracing::info!(charger, reason = close_reason, "disconnected");
    drop(registered);
    if let Some(p) = pending {
        let _ = p.req.reply.send(Err(CallError::Closed));
    }
    for req in queue {
        let _ = req.reply.send(Err(CallError::Closed));
    }
    let seen = chrono::DateTime::from_timestamp_millis(last_seen.load(Ordering::Relaxed)).unwrap_or_else(Utc::now);
    let disconnected = AdminOp::Disconnected {
        id: charger.clone(),
        last_seen: seen,
    };
    let _ = Box::pin(shared.store.admin(disconnected, Utc::now())).await;
}

struct Unregister<'a> {
    shared: &'a Shared,
    charger: &'a str,
    generation: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.shared.registry.unregister(self.charger, self.generation);
    }
}

#[derive(Default)]
struct Handled {
    reply: Option<String>,
    /// The store journaled `reply` with the message it answers.
    journaled: bool,
    followups: Vec<CallRequest>,
}

/// A frame as read, owning its parts (the tree it came from is gone).
// Built and taken apart once per frame on the stack; boxing the large
// variant would add an allocation to every CALL.
#[allow(clippy::large_enum_variant)]
enum Read {
    Call {
        id: String,
        action: String,
        decoded: Result<Inbound, super::Rejection>,
    },
    Result {
        id: String,
        payload: serde_json::Value,
    },
    Error {
        id: String,
        code: String,
        description: String,
    },
    Bad(frame::FrameError),
}

async fn handle_text(
    text: &str,
    charger: &str,
    proto: Protocol,
    shared: &Arc<Shared>,
    pending: &mut Option<Pending>,
) -> Handled {
    let now = Utc::now();
    let limit = shared.config.max_message_bytes;
    if text.len() > limit {
        let mut clipped: String = text.chars().take(JOURNAL_CLIP).collect();
        clipped.push_str(&format!("… ({} bytes, clipped)", text.len()));
        shared.store.record_frame(charger, Direction::In, clipped, now).await;
        let id = frame::sniff_id(text).unwrap_or_else(|| "-1".into());
        let desc = format!(
            "message of {} bytes exceeds this server's limit of {limit} bytes",
            text.len()
        );
        return Handled {
            reply: Some(frame::error(proto, &id, ErrorCode::Formation, &desc, json!({}))),
            ..Default::default()
        };
    }
    // Parsing, validation and decoding happen in this thread's arena, with
    // no await in between; what leaves it owns its data.
    let read = super::json::with_arena(|bump| match frame::split(text, bump) {
        Ok(RawFrame::Call { id, action, payload }) => {
            let decoded = super::decode_call(proto, &action, &payload, now);
            Read::Call { id, action, decoded }
        }
        Ok(RawFrame::Result { id, payload }) => Read::Result {
            id,
            payload: payload.to_value(),
        },
        Ok(RawFrame::Error {
            id, code, description, ..
        }) => Read::Error { id, code, description },
        Err(e) => Read::Bad(e),
    });
    let (id, action, decoded) = match read {
        Read::Call { id, action, decoded } => (id, action, decoded),
        Read::Result { id, payload } => {
            shared
                .store
                .record_frame(charger, Direction::In, text.to_string(), now)
                .await;
            complete(pending, &id, proto, Ok(payload));
            return Handled::default();
        }
        Read::Error { id, code, description } => {
            shared
                .store
                .record_frame(charger, Direction::In, text.to_string(), now)
                .await;
            complete(pending, &id, proto, Err(CallError::Remote { code, description }));
            return Handled::default();
        }
        Read::Bad(e) => {
            shared
                .store
                .record_frame(charger, Direction::In, text.to_string(), now)
                .await;
            return Handled {
                reply: frame_error_reply(proto, &e),
                ..Default::default()
            };
        }
    };
    let mut inbound = match decoded {
        Ok(i) => i,
        Err(rej) => {
            shared
                .store
                .record_frame(charger, Direction::In, text.to_string(), now)
                .await;
            return Handled {
                reply: Some(frame::error(proto, &id, rej.code, &rej.description, json!({}))),
                ..Default::default()
            };
        }
    };
    if let Inbound::DataTransfer(dt) = &mut inbound {
        dt.answer = crate::hook::answer(&shared.config.data_transfer, charger, dt).await;
    }
    let inbound = super::pnc::prepare(shared, charger, inbound).await;
    let (inbound, signed) = crate::security::pki::prepare(shared, charger, inbound);
    let observed = crate::loadctl::observe(charger, &inbound, now);
    if inbound.carries_signed_data() {
        shared.signed_seen.note(charger);
    }
    let answer = {
        let id = id.clone();
        let action = action.clone();
        Box::new(move |applied: &Applied| match applied {
            Ok(outcome) => frame::result(&id, &super::encode_reply(proto, &action, &outcome.reply)),
            Err(rej) => frame::error(proto, &id, rej.code, &rej.description, json!({})),
        })
    };
    match shared
        .store
        .inbound(charger, text.to_string(), now, inbound, answer)
        .await
    {
        Ok((Ok(outcome), reply)) => {
            if let Some(obs) = observed {
                shared.load.acknowledged(charger, obs, &outcome.reply);
            }
            if let Reply::Boot {
                status: crate::domain::Registration::Accepted,
                ..
            } = outcome.reply
            {
                crate::control::local_list::booted(shared, charger);
            }
            if outcome.inventory_due && shared.config.device_model.report_on_boot {
                crate::control::device::report_on_boot(shared.clone(), charger.to_string());
            }
            let mut followups = Vec::new();
            for (cmd, session) in outcome.followups {
                followups.push(evidence_call(shared.clone(), cmd, session));
            }
            if let Some(cmd) = signed
                && matches!(outcome.reply, Reply::Status { accepted: true })
            {
                followups.push(crate::security::pki::deliver(shared.clone(), charger, cmd));
            }
            Handled {
                reply: Some(reply),
                journaled: true,
                followups,
            }
        }
        Ok((Err(_), reply)) => Handled {
            reply: Some(reply),
            journaled: true,
            ..Default::default()
        },
        Err(e) => {
            tracing::error!(charger, "store failed: {e}");
            let desc = "the server could not store this message; nothing was acknowledged, please retry";
            Handled {
                reply: Some(frame::error(proto, &id, ErrorCode::InternalError, desc, json!({}))),
                ..Default::default()
            }
        }
    }
}

/// A follow-up call whose answer is evidence about an open session.
fn evidence_call(shared: Arc<Shared>, cmd: Command, session: u64) -> CallRequest {
    let (reply, rx) = tokio::sync::oneshot::channel();
    let is_status = matches!(cmd, Command::GetTransactionStatus { .. });
    tokio::spawn(async move {
        let Ok(Ok(CommandResult::TransactionStatus {
            ongoing: Some(false),
            messages_in_queue: false,
            ..
        })) = rx.await
        else {
            return;
        };
        if is_status {
            let evidence =
                "after a reboot the charger reported the transaction is no longer ongoing and has no queued messages"
                    .to_string();
            let _ = shared
                .store
                .admin(AdminOp::InferEnd { session, evidence }, Utc::now())
                .await;
        }
    });
    CallRequest {
        cmd: Box::new(cmd),
        reply,
    }
}

fn complete(pending: &mut Option<Pending>, id: &str, proto: Protocol, result: Result<Value, CallError>) {
    if pending.as_ref().is_none_or(|p| p.id != id) {
        tracing::debug!(
            id,
            "answer to a call that is not outstanding (late or unknown); ignored"
        );
        return;
    }
    let Some(p) = pending.take() else { return };
    let outcome = result.and_then(|payload| {
        schema::validate(proto, p.action, Part::Response, &payload)
            .map_err(|v| CallError::BadAnswer(format!("charger answered {} with an invalid payload: {v}", p.action)))?;
        Ok(super::decode_result(proto, &p.req.cmd, &payload))
    });
    let _ = p.req.reply.send(outcome);
}

/// The answer to a frame that is not a valid CALL/CALLRESULT/CALLERROR.
fn frame_error_reply(proto: Protocol, e: &FrameError) -> Option<String> {
    match e {
        FrameError::Malformed { id, reason } => {
            let id = id.clone().unwrap_or_else(|| "-1".into());
            let code = if id == "-1" {
                ErrorCode::RpcFrameworkError
            } else {
                ErrorCode::Formation
            };
            Some(frame::error(proto, &id, code, reason, json!({})))
        }
        // 1.6 says to ignore unknown message types; 2.0.1 names an error for them.
        FrameError::UnknownType { id: Some(id), type_id } if proto == Protocol::V201 => Some(frame::error(
            proto,
            id,
            ErrorCode::MessageTypeNotSupported,
            &format!("message type {type_id} is not supported"),
            json!({}),
        )),
        FrameError::UnknownType { .. } => None,
    }
}
