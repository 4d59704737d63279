//! OCPP-J framing: CALL / CALLRESULT / CALLERROR, and the error codes in the
//! spelling of each version.

use super::json::{Json, Num};
use crate::domain::Protocol;
use bumpalo::Bump;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    Result {
        id: String,
        payload: Value,
    },
    Error {
        id: String,
        code: String,
        description: String,
        details: Value,
    },
}

/// A frame that is not a valid OCPP-J message. `id` is the message id when
/// it could still be read, so the answer can echo it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    #[error("not a valid OCPP-J message: {reason}")]
    Malformed { id: Option<String>, reason: String },
    #[error("message type {type_id} is not CALL, CALLRESULT or CALLERROR")]
    UnknownType { id: Option<String>, type_id: i64 },
}

/// Message ids are at most 36 characters (OCPP-J: UUID length).
pub const MAX_ID_LEN: usize = 36;

/// A frame with its payload as a [`Json`] tree borrowing from the text: the
/// inbound path validates and decodes a CALL's payload from that one parse.
#[derive(Debug)]
pub enum RawFrame<'a> {
    Call {
        id: String,
        action: String,
        payload: Json<'a>,
    },
    Result {
        id: String,
        payload: Json<'a>,
    },
    Error {
        id: String,
        code: String,
        description: String,
        details: Option<Json<'a>>,
    },
}

/// Parse `text` into `bump` (see [`super::json::with_arena`]).
pub fn split<'a>(text: &'a str, bump: &'a Bump) -> Result<RawFrame<'a>, FrameError> {
    let tree = Json::parse(text, bump).map_err(|e| FrameError::Malformed {
        id: sniff_id(text),
        reason: format!("invalid JSON: {e}"),
    })?;
    let Json::Arr(items) = tree else {
        return Err(FrameError::Malformed {
            id: None,
            reason: "not a JSON array".into(),
        });
    };
    let string = |i: usize| match items.get(i) {
        Some(Json::Str(s)) => Some(s.to_string()),
        _ => None,
    };
    let id = string(1).filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN);
    let malformed = |reason: &str| FrameError::Malformed {
        id: id.clone(),
        reason: reason.to_string(),
    };
    let type_id = match items.first() {
        Some(Json::Num(Num::U(u))) => i64::try_from(*u).unwrap_or(i64::MAX),
        Some(Json::Num(Num::I(i))) => *i,
        _ => return Err(malformed("first element must be the message type number")),
    };
    let Some(msg_id) = id.clone() else {
        return Err(malformed(
            "second element must be a message id string of 1 to 36 characters",
        ));
    };
    match type_id {
        2 => {
            if items.len() != 4 {
                return Err(malformed("a CALL has exactly 4 elements"));
            }
            let action = string(2).ok_or_else(|| malformed("third element of a CALL must be the action name"))?;
            Ok(RawFrame::Call {
                id: msg_id,
                action,
                payload: items[3],
            })
        }
        3 => {
            if items.len() != 3 {
                return Err(malformed("a CALLRESULT has exactly 3 elements"));
            }
            Ok(RawFrame::Result {
                id: msg_id,
                payload: items[2],
            })
        }
        4 => {
            if !(4..=5).contains(&items.len()) {
                return Err(malformed("a CALLERROR has 5 elements"));
            }
            Ok(RawFrame::Error {
                id: msg_id,
                code: string(2).unwrap_or_else(|| "GenericError".into()),
                description: string(3).unwrap_or_default(),
                details: (items.len() == 5).then(|| items[4]),
            })
        }
        other => Err(FrameError::UnknownType { id, type_id: other }),
    }
}

/// [`split`], with the payload as an owned `Value`.
pub fn parse(text: &str) -> Result<Frame, FrameError> {
    let bump = Bump::new();
    Ok(match split(text, &bump)? {
        RawFrame::Call { id, action, payload } => Frame::Call {
            id,
            action,
            payload: payload.to_value(),
        },
        RawFrame::Result { id, payload } => Frame::Result {
            id,
            payload: payload.to_value(),
        },
        RawFrame::Error {
            id,
            code,
            description,
            details,
        } => Frame::Error {
            id,
            code,
            description,
            details: details.map_or_else(|| json!({}), |d| d.to_value()),
        },
    })
}

/// Best effort to read the message id of a frame that is not valid JSON
/// (e.g. truncated), so the CALLERROR can still be correlated.
pub fn sniff_id(text: &str) -> Option<String> {
    let rest = text.trim_start().strip_prefix('[')?;
    let (_, rest) = rest.split_once(',')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    let (id, _) = rest.split_once('"')?;
    (!id.is_empty() && id.len() <= MAX_ID_LEN && !id.contains('\\')).then(|| id.to_string())
}

/// The OCPP-J error codes, named once; `wire` spells them per version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotImplemented,
    NotSupported,
    InternalError,
    ProtocolError,
    SecurityError,
    /// 1.6 FormationViolation / 2.0.1 FormatViolation.
    Formation,
    PropertyConstraintViolation,
    /// 1.6 OccurenceConstraintViolation / 2.0.1 OccurrenceConstraintViolation.
    Occurrence,
    TypeConstraintViolation,
    GenericError,
    /// 2.0.1 only; 1.6 answers FormationViolation.
    RpcFrameworkError,
    /// 2.0.1 only.
    MessageTypeNotSupported,
}

impl ErrorCode {
    pub fn wire(self, proto: Protocol) -> &'static str {
        let v16 = proto == Protocol::V16;
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::Formation if v16 => "FormationViolation",
            ErrorCode::Formation => "FormatViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::Occurrence if v16 => "OccurenceConstraintViolation",
            ErrorCode::Occurrence => "OccurrenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
            ErrorCode::RpcFrameworkError if v16 => "FormationViolation",
            ErrorCode::RpcFrameworkError => "RpcFrameworkError",
            ErrorCode::MessageTypeNotSupported if v16 => "NotSupported",
            ErrorCode::MessageTypeNotSupported => "MessageTypeNotSupported",
        }
    }
}

/// 2.0.1 caps errorDescription at 255 characters.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(255) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

pub fn call(id: &str, action: &str, payload: &Value) -> String {
    json!([2, id, action, payload]).to_string()
}

pub fn result(id: &str, payload: &Value) -> String {
    json!([3, id, payload]).to_string()
}

pub fn error(proto: Protocol, id: &str, code: ErrorCode, description: &str, details: Value) -> String {
    json!([4, id, code.wire(proto), clip(description), details]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_frame_types() {
        assert_eq!(
            parse(r#"[2,"a","Heartbeat",{}]"#).unwrap(),
            Frame::Call {
                id: "a".into(),
                action: "Heartbeat".into(),
                payload: json!({})
            }
        );
        assert!(matches!(parse(r#"[3,"a",{"x":1}]"#).unwrap(), Frame::Result { .. }));
        assert!(matches!(
            parse(r#"[4,"a","NotImplemented","",{}]"#).unwrap(),
            Frame::Error { .. }
        ));
    }

    #[test]
    fn malformed_frames_keep_the_id_when_readable() {
        match parse(r#"[2,"abc","Heartbeat",{"#) {
            Err(FrameError::Malformed { id, .. }) => assert_eq!(id.as_deref(), Some("abc")),
            other => panic!("{other:?}"),
        }
        match parse(r#"[2,"abc","Heartbeat"]"#) {
            Err(FrameError::Malformed { id, .. }) => assert_eq!(id.as_deref(), Some("abc")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse("{}"), Err(FrameError::Malformed { id: None, .. })));
        assert!(matches!(
            parse(r#"[2,17,"Heartbeat",{}]"#),
            Err(FrameError::Malformed { id: None, .. })
        ));
        assert!(matches!(
            parse(r#"[7,"x",{}]"#),
            Err(FrameError::UnknownType { type_id: 7, .. })
        ));
        let long = format!(r#"[2,"{}","Heartbeat",{{}}]"#, "x".repeat(37));
        assert!(matches!(parse(&long), Err(FrameError::Malformed { id: None, .. })));
    }

    #[test]
    fn error_codes_use_each_versions_spelling() {
        assert_eq!(ErrorCode::Formation.wire(Protocol::V16), "FormationViolation");
        assert_eq!(ErrorCode::Formation.wire(Protocol::V201), "FormatViolation");
        assert_eq!(
            ErrorCode::Occurrence.wire(Protocol::V16),
            "OccurenceConstraintViolation"
        );
        assert_eq!(
            ErrorCode::Occurrence.wire(Protocol::V201),
            "OccurrenceConstraintViolation"
        );
        let e = error(
            Protocol::V201,
            "1",
            ErrorCode::GenericError,
            &"é".repeat(300),
            json!({}),
        );
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v[3].as_str().unwrap().chars().count(), 255);
    }
}
