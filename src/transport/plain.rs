//! Plain TCP, with one check on a connection's first bytes: a TLS ClientHello on a
//! plain-text listener (a client configured for TLS on the wrong port) gets a log
//! line saying so. The front still answers the bytes as its protocol says (AMQP
//! with its protocol header, NATS with -ERR, STOMP with ERROR) and closes.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::info;

use super::Duplex;

/// A plain TCP connection (or its read half) whose first bytes are checked.
#[derive(Debug)]
pub(crate) struct Plain<S> {
    inner: S,
    /// Whose first bytes are still to be checked (`None` once they were).
    unchecked: Option<SocketAddr>,
}

impl<S> Plain<S> {
    pub(crate) fn new(inner: S, peer: SocketAddr) -> Plain<S> {
        Plain {
            inner,
            unchecked: Some(peer),
        }
    }
}

/// Whether `first` (a connection's first bytes) starts a TLS handshake record: type
/// 22, then a 3.x version. None of our protocols can begin that way: MQTT's first
/// byte would be a CONNECT with reserved flags set, AMQP's must be `A`, and 0x16 is
/// not a STOMP or NATS command nor an HTTP method.
fn is_client_hello(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, minor, ..] if *minor <= 0x04)
}

impl<S: AsyncRead + Unpin> AsyncRead for Plain<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Some(peer) = self.unchecked {
            let first = &buf.filled()[before..];
            if !first.is_empty() {
                self.unchecked = None;
                if is_client_hello(first) {
                    info!(%peer, "TLS ClientHello on a plain-text listener (the client expects TLS: point it at a TLS listener)");
                }
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Plain<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Duplex for Plain<TcpStream> {
    type Read = Plain<tokio::net::tcp::OwnedReadHalf>;
    type Write = tokio::net::tcp::OwnedWriteHalf;

    /// Without a lock between the halves; the read half keeps the check.
    fn halves(self) -> (Self::Read, Self::Write) {
        let (read, write) = self.inner.into_split();
        (
            Plain {
                inner: read,
                unchecked: self.unchecked,
            },
            write,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_client_hello_is_told_from_every_protocols_first_bytes() {
        assert!(is_client_hello(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(is_client_hello(&[0x16, 0x03, 0x03]));
        assert!(!is_client_hello(&[0x16, 0x03]));
        assert!(!is_client_hello(&[0x16, 0x03, 0x05]));
        assert!(!is_client_hello(&[0x10, 0x16, 0x00, 0x04]));
        assert!(!is_client_hello(b"AMQP\x00\x00\x09\x01"));
        assert!(!is_client_hello(b"CONNECT\n"));
        assert!(!is_client_hello(b"GET / HTTP/1.1\r\n"));
    }

    #[tokio::test]
    async fn the_bytes_pass_unchanged_and_only_the_first_are_checked() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (mut client, ours) = tokio::io::duplex(64);
        let mut plain = Plain::new(ours, peer);
        client.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
        let mut buf = [0u8; 4];
        plain.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, [0x16, 0x03, 0x01, 0x00]);
        assert!(plain.unchecked.is_none());
        client.write_all(b"PING").await.unwrap();
        plain.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"PING");
    }
}
