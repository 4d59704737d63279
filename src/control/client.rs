//! The client side of the control socket, used by every CLI subcommand.

use super::proto::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no voltyard server is running for {path} ({err}); start one with `voltyard serve --data-dir …`")]
    Unreachable { path: String, err: std::io::Error },
    #[error("cannot reach the voltyard server at tls://{addr}: {err}")]
    Remote { addr: String, err: String },
    #[error("{0}")]
    Setup(String),
    #[error("lost the connection to the server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server sent something this client does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Api(ApiError),
}

pub struct Client {
    read: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    write: Box<dyn AsyncWrite + Unpin + Send>,
}

/// Where the server is: its Unix socket, or its TCP control listener.
#[derive(Debug, Clone)]
pub enum Target {
    Socket(PathBuf),
    Tls(super::remote::Remote),
}

impl Target {
    pub async fn connect(&self) -> Result<Client, ClientError> {
        match self {
            Target::Socket(path) => Client::connect(path).await,
            Target::Tls(remote) => remote.connect().await,
        }
    }
}

impl Client {
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|err| ClientError::Unreachable {
                path: socket.display().to_string(),
                err,
            })?;
        let (read, write) = stream.into_split();
        Ok(Client::from_parts(Box::new(read), Box::new(write)))
    }

    pub(super) fn from_parts(
        read: Box<dyn AsyncRead + Unpin + Send>,
        write: Box<dyn AsyncWrite + Unpin + Send>,
    ) -> Self {
        Client {
            read: BufReader::new(read),
            write,
        }
    }

    /// The first exchange on the TCP control listener: the token.
    pub(super) async fn hello(&mut self, token: &str) -> Result<(), ClientError> {
        self.send(&Hello { token: token.into() }).await?;
        self.reply().await.map(drop)
    }

    pub async fn call(&mut self, request: Request) -> Result<Value, ClientError> {
        self.send(&Envelope { v: VERSION, request }).await?;
        self.reply().await
    }

    async fn send<T: serde::Serialize>(&mut self, v: &T) -> Result<(), ClientError> {
        let mut line = serde_json::to_string(v).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        self.write.write_all(line.as_bytes()).await?;
        Ok(())
    }

    async fn reply(&mut self) -> Result<Value, ClientError> {
        let reply: Reply =
            serde_json::from_str(&self.next_line().await?).map_err(|e| ClientError::Protocol(e.to_string()))?;
        match (reply.ok, reply.result, reply.error) {
            (true, Some(v), _) => Ok(v),
            (false, _, Some(e)) => Err(ClientError::Api(e)),
            _ => Err(ClientError::Protocol("reply with neither result nor error".into())),
        }
    }

    /// The next streamed journal entry of a `follow` request.
    pub async fn next_item(&mut self) -> Result<StreamItem, ClientError> {
        serde_json::from_str(&self.next_line().await?).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// The next line of a `watch` stream.
    pub async fn next_watch_item(&mut self) -> Result<WatchItem, ClientError> {
        serde_json::from_str(&self.next_line().await?).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn next_line(&mut self) -> Result<String, ClientError> {
        let mut buf = String::new();
        if self.read.read_line(&mut buf).await? == 0 {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            )));
        }
        Ok(buf)
    }
}
