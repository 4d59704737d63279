//! Plain HTTP on the OCPP port: `GET|HEAD /files/firmware/<sha256>[/name]`
//! serves stored firmware, `PUT|POST /upload/<token>[/name]` takes a
//! charger's log (raw body or multipart/form-data). The listener peeks at a
//! new connection's first bytes and hands only these requests here; every
//! other request, WebSocket upgrades included, goes to the handshake as before.

use super::{firmware_dir, logs_dir, safe_name, token_hash};
use crate::domain::transfer::UploadedFile;
use crate::server::Shared;
use crate::store::{AdminOp, AdminResult, TransferOp};
use chrono::Utc;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyDataStream, BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

type Body = BoxBody<Bytes, std::io::Error>;

const PREFIXES: [&[u8]; 4] = [b"GET /files/", b"HEAD /files/", b"PUT /upload/", b"POST /upload/"];

/// What a new connection's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A firmware download or a log upload.
    Files,
    /// Anything else (a WebSocket upgrade): the handshake decides.
    Other,
    /// Nothing arrived in time, or the peer went away.
    Silent,
}

/// Look at a new connection's first bytes (left in the socket). Decides as
/// soon as no prefix can match any more, so a WebSocket client
/// (`GET /ocpp/…`) is told apart at its sixth byte.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 13];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Sniffed::Silent,
        };
        let head = &buf[..n];
        let mut partial = false;
        for p in PREFIXES {
            let k = n.min(p.len());
            if head[..k] == p[..k] {
                if n >= p.len() {
                    return Sniffed::Files;
                }
                partial = true;
            }
        }
        if !partial {
            return Sniffed::Other;
        }
        if Instant::now() >= deadline {
            return Sniffed::Silent;
        }
        // Only part of the request line has arrived.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let header_timeout = shared.config.handshake_timeout();
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(req, &shared).await) }
    });
    // One request per connection: chargers fetch or upload one file, and
    // no idle keep-alive connection is left holding a task.
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = conn.await {
        tracing::debug!("file request: {e}");
    }
}

fn text(status: StatusCode, msg: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{msg}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r
}

async fn route(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (first, second, rest) = (parts.next(), parts.next(), parts.next());
    match (req.method().clone(), first, second) {
        (m @ (Method::GET | Method::HEAD), Some("files"), Some("firmware")) => {
            let sha = rest.unwrap_or_default().split('/').next().unwrap_or_default();
            firmware(shared, sha, m == Method::HEAD).await
        }
        (Method::PUT | Method::POST, Some("upload"), Some(token)) => {
            let token = token.to_string();
            let name = rest.map(str::to_string);
            upload(shared, req, &token, name).await
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn firmware(shared: &Shared, sha: &str, head: bool) -> Response<Body> {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return text(
            StatusCode::NOT_FOUND,
            "firmware is addressed by its sha256 (64 lowercase hex digits)",
        );
    }
    let path = firmware_dir(&shared.config.data_dir).join(sha);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return text(StatusCode::NOT_FOUND, "no such firmware"),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let body = if head {
        Full::new(Bytes::new()).map_err(|never| match never {}).boxed()
    } else {
        file_body(file)
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(hyper::header::CONTENT_LENGTH, len.into());
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/octet-stream"),
    );
    r
}

/// A file streamed in 64 KiB chunks, so a download costs no more memory
/// than that however large the firmware.
fn file_body(file: tokio::fs::File) -> Body {
    let chunks = futures_util::stream::unfold(Some(file), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    BodyExt::boxed(StreamBody::new(chunks))
}

enum UploadError {
    TooLarge,
    Bad(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        UploadError::Io(e)
    }
}

async fn upload(shared: &Shared, req: Request<Incoming>, token: &str, name: Option<String>) -> Response<Body> {
    let hash = token_hash(token);
    let (charger, id) = match shared.store.upload_token(&hash) {
        Ok(Some(bound)) => bound,
        Ok(None) => return text(StatusCode::FORBIDDEN, "unknown or spent upload token"),
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let max = shared.config.files.max_upload_bytes;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("uploads are limited to {max} bytes"),
        );
    }
    let dir = logs_dir(&shared.config.data_dir, &charger);
    let received = receive(req, &dir, max).await;
    let (tmp, bytes, sha256, field_name) = match received {
        Ok(r) => r,
        Err(UploadError::TooLarge) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("uploads are limited to {max} bytes"),
            );
        }
        Err(UploadError::Bad(why)) => return text(StatusCode::BAD_REQUEST, &why),
        Err(UploadError::Io(e)) => {
            tracing::warn!(charger, "upload failed: {e}");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "the upload could not be stored");
        }
    };
    let name = safe_name(&field_name.or(name).unwrap_or_else(|| "upload.bin".into()));
    let stored = format!("{id}-{name}");
    let dest = dir.join(&stored);
    // Never overwrite: a racing second use of the token loses here or at the commit.
    if tmp.persist_noclobber(&dest).is_err() {
        return text(StatusCode::FORBIDDEN, "unknown or spent upload token");
    }
    let rel = dest
        .strip_prefix(&shared.config.data_dir)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| dest.to_string_lossy().into_owned());
    let file = UploadedFile {
        name,
        path: rel,
        bytes,
        sha256,
        t: Utc::now(),
    };
    let op = AdminOp::Transfer(TransferOp::Uploaded { token_hash: hash, file });
    match shared.store.admin(op, Utc::now()).await {
        Ok(AdminResult::Json(_)) => {
            tracing::info!(charger, request = id, bytes, "upload stored");
            text(StatusCode::CREATED, "stored")
        }
        Ok(_) => {
            let _ = std::fs::remove_file(&dest);
            text(StatusCode::FORBIDDEN, "unknown or spent upload token")
        }
        Err(e) => {
            let _ = std::fs::remove_file(&dest);
            text(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

/// The body (or a multipart request's first file) into a temporary file in
/// `dir`: the file, its size, sha256 and the name the form gave it.
async fn receive(
    req: Request<Incoming>,
    dir: &std::path::Path,
    max: u64,
) -> Result<(tempfile::TempPath, u64, String, Option<String>), UploadError> {
    tokio::fs::create_dir_all(dir).await?;
    let (std_file, tmp) = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)?
        .into_parts();
    let mut out = tokio::fs::File::from_std(std_file);
    let mut sink = Sink {
        out: &mut out,
        hasher: Sha256::new(),
        bytes: 0,
        max,
    };
    let boundary = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
        .map(|ct| multer::parse_boundary(ct).map_err(|e| UploadError::Bad(format!("multipart: {e}"))))
        .transpose()?;
    let mut field_name = None;
    match boundary {
        Some(boundary) => {
            let mut form = multer::Multipart::new(BodyDataStream::new(req.into_body()), boundary);
            // The first field with a file name is the file; other fields are skipped.
            while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
                if field_name.is_some() || field.file_name().is_none() {
                    continue;
                }
                field_name = field.file_name().map(str::to_string);
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    sink.write(&chunk).await?;
                }
            }
            if field_name.is_none() {
                return Err(UploadError::Bad("the multipart form carries no file".into()));
            }
        }
        None => {
            let mut body = req.into_body().into_data_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| UploadError::Bad(format!("body: {e}")))?;
                sink.write(&chunk).await?;
            }
        }
    }
    let (bytes, sha) = (sink.bytes, data_encoding::HEXLOWER.encode(&sink.hasher.finalize()));
    out.flush().await?;
    out.sync_all().await?;
    Ok((tmp, bytes, sha, field_name))
}

fn multipart_error(e: multer::Error) -> UploadError {
    UploadError::Bad(format!("multipart: {e}"))
}

struct Sink<'a> {
    out: &'a mut tokio::fs::File,
    hasher: Sha256,
    bytes: u64,
    max: u64,
}

impl Sink<'_> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.bytes += chunk.len() as u64;
        if self.bytes > self.max {
            return Err(UploadError::TooLarge);
        }
        self.hasher.update(chunk);
        self.out.write_all(chunk).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sniffed(parts: &[&'static [u8]]) -> Sniffed {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parts = parts.to_vec();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            for p in parts {
                c.write_all(p).await.unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        let (server, _) = listener.accept().await.unwrap();
        let got = sniff(&server, Duration::from_millis(200)).await;
        client.abort();
        got
    }

    #[tokio::test]
    async fn file_requests_are_told_from_websocket_handshakes_without_consuming_bytes() {
        assert_eq!(sniffed(&[b"GET /ocpp/CP1 HTTP/1.1\r\n"]).await, Sniffed::Other);
        assert_eq!(sniffed(&[b"GET /files/firmware/ab HTTP/1.1\r\n"]).await, Sniffed::Files);
        // A request line that arrives in pieces is waited for.
        assert_eq!(sniffed(&[b"PU", b"T /upload/t HTTP/1.1\r\n"]).await, Sniffed::Files);
        assert_eq!(sniffed(&[b"POST /ocpp"]).await, Sniffed::Other);
        assert_eq!(sniffed(&[]).await, Sniffed::Silent);
        assert_eq!(sniffed(&[b"HEAD /fi"]).await, Sniffed::Silent);
    }
}
