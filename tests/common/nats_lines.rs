//! A NATS client speaking raw protocol lines, for byte-exact answers.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::WAIT;

pub struct NatsLines {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
    /// The server's INFO.
    pub info: serde_json::Value,
}

impl NatsLines {
    /// Connects and reads INFO.
    pub async fn open(addr: SocketAddr) -> NatsLines {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut nats = NatsLines {
            lines: BufReader::new(read).lines(),
            write,
            info: serde_json::Value::Null,
        };
        let info = nats.line().await.expect("INFO");
        let json = info.strip_prefix("INFO ").expect("INFO first");
        nats.info = serde_json::from_str(json).unwrap();
        nats
    }

    /// Connects as `user` (password `<user>-pw`), sends `ops` and waits for the
    /// PONG after them; panics on any other answer.
    pub async fn connect(addr: SocketAddr, user: &str, ops: &str) -> NatsLines {
        let mut nats = NatsLines::open(addr).await;
        let connect =
            format!("CONNECT {{\"user\":\"{user}\",\"pass\":\"{user}-pw\",\"verbose\":false}}\r\n");
        nats.send(&format!("{connect}{ops}")).await;
        assert_eq!(nats.until_pong().await, Ok(Vec::new()));
        nats
    }

    /// Writes `ops`, then a PING.
    pub async fn send(&mut self, ops: &str) {
        self.write
            .write_all(format!("{ops}PING\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line (`None`: the server closed the connection).
    pub async fn line(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("a line in time")
            .ok()
            .flatten()
    }

    /// The lines before the next PONG (the server's PINGs left out); `Err` with
    /// them if the server closed the connection first.
    pub async fn until_pong(&mut self) -> Result<Vec<String>, Vec<String>> {
        let mut got = Vec::new();
        loop {
            match self.line().await.as_deref() {
                Some("PONG") => return Ok(got),
                Some("PING") => {}
                Some(line) => got.push(line.to_owned()),
                None => return Err(got),
            }
        }
    }
}
