//! The client side of the control socket, used by every CLI subcommand.

use super::proto::*;
use serde_json::Value;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no voltyard server is running for {path} ({err}); start one with `voltyard serve --data-dir …`")]
    Unreachable { path: String, err: std::io::Error },
    #[error("lost the connection to the server: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server sent something this client does not understand: {0}")]
    Protocol(String),
    #[error("{0}")]
    Api(ApiError),
}

pub struct Client {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
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
        Ok(Client {
            read: BufReader::new(read),
            write,
        })
    }

    pub async fn call(&mut self, request: Request) -> Result<Value, ClientError> {
        let mut line = serde_json::to_string(&Envelope { v: VERSION, request })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push('\n');
        self.write.write_all(line.as_bytes()).await?;
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
