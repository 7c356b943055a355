//! Transports: the byte streams a listener's connections arrive on (TCP, TLS,
//! WebSocket, WebSocket over TLS). Fronts are generic over [`Duplex`], so which
//! transport carries a connection is the listener's choice, never protocol code's.

pub(crate) mod plain;
pub(crate) mod tls;
pub(crate) mod websocket;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The read half of a connection's byte stream (TCP, TLS, WebSocket).
pub(crate) trait ReadHalf: AsyncRead + Unpin + Send + 'static {}
impl<T: AsyncRead + Unpin + Send + 'static> ReadHalf for T {}

/// The write half of a connection's byte stream.
pub(crate) trait WriteHalf: AsyncWrite + Unpin + Send + 'static {
    /// Notes why the broker is about to close the connection, for a transport
    /// that tells the client when it closes (a WebSocket close frame); TCP and TLS
    /// just close.
    fn goodbye(&mut self, _goodbye: Goodbye) {}
}

impl WriteHalf for tokio::net::tcp::OwnedWriteHalf {}
impl<S: AsyncRead + AsyncWrite + Send + 'static> WriteHalf for tokio::io::WriteHalf<S> {}

/// Why the broker closes a connection, as a WebSocket close frame says it (status
/// code and reason); the front has already told the client in its own protocol
/// (DISCONNECT, ERROR, -ERR) where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Goodbye {
    /// The session ended as the protocol ends it.
    Normal,
    /// The broker is shutting down.
    GoingAway,
    /// The client broke the protocol.
    ProtocolError(String),
    /// The client was refused: not authorized, too slow a consumer, a limit.
    Policy(String),
    /// The client sent a message over the size limit.
    TooBig(String),
}

/// A connection's byte stream, whatever carries it (TCP, TLS, ...). Fronts that
/// read and write in separate places take its halves; HTTP takes it whole.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The read half.
    type Read: ReadHalf;
    /// The write half.
    type Write: WriteHalf;
    /// Splits the stream in two.
    fn halves(self) -> (Self::Read, Self::Write);

    /// The client's certificate (DER), verified in the TLS handshake; none
    /// without TLS or when the client sent none.
    fn client_certificate(&self) -> Option<&[u8]> {
        None
    }
}

impl Duplex for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;

    /// Without a lock between the halves.
    fn halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}
