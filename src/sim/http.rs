//! The simulator's HTTP client (hyper, HTTP/1.1 over plain TCP): a
//! firmware download and a log upload, as raw PUT or multipart/form-data
//! POST, each bounded in size and time.

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// Largest firmware image a simulated charger downloads.
const MAX_IMAGE: usize = 256 << 20;
const TIMEOUT: Duration = Duration::from_secs(120);

/// (authority, path) of an `http://` URL.
fn split(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: the simulator speaks plain http:// only"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    Ok((authority.to_string(), path.to_string()))
}

async fn send(method: Method, url: &str, content_type: Option<String>, body: Vec<u8>) -> Result<Bytes, String> {
    let (authority, path) = split(url)?;
    let work = async {
        let host = if authority.contains(':') {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let tcp = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| format!("connect {host}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path.as_str())
            .header(hyper::header::HOST, authority.as_str());
        if let Some(ct) = content_type {
            req = req.header(hyper::header::CONTENT_TYPE, ct);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_IMAGE)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        if !status.is_success() {
            let why = String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                .trim()
                .to_string();
            return Err(format!("{url}: HTTP {} {why}", status.as_u16()));
        }
        Ok(bytes)
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| format!("{url}: no answer within {TIMEOUT:?}"))?
}

pub async fn download(url: &str) -> Result<Vec<u8>, String> {
    send(Method::GET, url, None, Vec::new()).await.map(|b| b.to_vec())
}

pub async fn upload(url: &str, name: &str, body: Vec<u8>, multipart: bool) -> Result<(), String> {
    if !multipart {
        return send(Method::PUT, url, Some("application/octet-stream".into()), body)
            .await
            .map(drop);
    }
    let boundary = format!("voltyard-sim-{}", body.len());
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&body);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/form-data; boundary={boundary}");
    send(Method::POST, url, Some(ct), form).await.map(drop)
}

/// Run one job: the image for a download, nothing for an upload.
pub async fn run(job: &super::transfer::Job) -> Result<Vec<u8>, String> {
    use super::transfer::Job;
    match job {
        Job::Download { url, after, .. } => {
            tokio::time::sleep(*after).await;
            download(url).await
        }
        Job::Upload {
            url,
            name,
            body,
            multipart,
            ..
        } => upload(url, name, body.clone(), *multipart).await.map(|()| Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(
            super::split("http://127.0.0.1:9000/files/firmware/ab/x.bin").unwrap(),
            ("127.0.0.1:9000".into(), "/files/firmware/ab/x.bin".into())
        );
        assert!(super::split("ftp://h/x").is_err());
    }
}
