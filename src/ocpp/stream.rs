//! The HTTP request head of a WebSocket handshake, read before tungstenite
//! sees it, so that slow checks (Argon2 password hashes) run off the async
//! runtime; `Rewind` then hands the same bytes to tungstenite.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// A head larger than this is refused (tungstenite's own limit is similar).
const MAX_HEAD: usize = 16 * 1024;

/// What the handshake checks need from the request head.
#[derive(Debug, Default)]
pub struct Head {
    pub path: String,
    pub authorization: Option<String>,
}

/// Read up to the end of the request head; the bytes read (head and
/// anything after it) are returned to be replayed.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<(Vec<u8>, Head)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let scan_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[scan_from..].windows(4).any(|w| w == b"\r\n\r\n") {
            let head =
                parse(&buf).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP request"))?;
            return Ok((buf, head));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP request head too large",
            ));
        }
    }
}

fn parse(buf: &[u8]) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let path = req.path?.split('?').next().unwrap_or("").to_string();
    let authorization = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_string);
    Some(Head { path, authorization })
}

/// A stream that first yields bytes already read from it. Once they are
/// replayed (during the handshake) a read costs one branch more.
pub struct Rewind<S> {
    head: Option<Box<[u8]>>,
    pos: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(head: Vec<u8>, inner: S) -> Self {
        Rewind {
            head: (!head.is_empty()).then(|| head.into_boxed_slice()),
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(head) = &this.head {
            let n = buf.remaining().min(head.len() - this.pos);
            buf.put_slice(&head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == head.len() {
                this.head = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn head_is_parsed_and_replayed_in_full() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let req = b"GET /ocpp/CP%201?x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic QTpC\r\n\r\nEXTRA";
        let writer = tokio::spawn(async move {
            for part in req.chunks(7) {
                a.write_all(part).await.unwrap();
            }
            a
        });
        let (bytes, head) = read_head(&mut b).await.unwrap();
        let _a = writer.await.unwrap();
        assert_eq!(head.path, "/ocpp/CP%201");
        assert_eq!(head.authorization.as_deref(), Some("Basic QTpC"));
        let mut r = Rewind::new(bytes, b);
        let mut got = vec![0u8; req.len()];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..], &req[..]);
    }
}
