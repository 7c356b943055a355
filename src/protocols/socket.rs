//! What every front does with its socket alike: writes bounded by a deadline, and
//! the goodbye (last bytes, then draining the client's input before closing).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long one socket write may take before the client counts as gone (a client
/// that stops reading must not hold its task, its session or a takeover forever;
/// nats-server's write deadline is the same 10 s).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last bytes of a closing connection, and reading what the client
/// still sends after them, may take.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a write failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The socket failed.
    Io(std::io::Error),
    /// The client did not read for [`WRITE_TIMEOUT`].
    TimedOut,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Io(e) => e.fmt(f),
            WriteError::TimedOut => f.write_str("write timed out: the client is not reading"),
        }
    }
}

/// Writes all of `bytes` within [`WRITE_TIMEOUT`].
pub(crate) async fn write<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> Result<(), WriteError> {
    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriteError::Io(e)),
        Err(_) => Err(WriteError::TimedOut),
    }
}

/// Writes the last bytes of a connection, bounded in time, closes the sending side,
/// then reads and discards what the client still sends for a moment: closing a
/// socket with unread input makes the kernel reset the connection, which can
/// destroy the last message (a DISCONNECT, an -ERR) before the client has read it.
pub(crate) async fn farewell<R, W>(mut reader: R, mut writer: W, last: &[u8])
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, async {
        let _ = writer.write_all(last).await;
        let _ = writer.shutdown().await;
        let mut scratch = [0u8; 4096];
        while let Ok(n) = reader.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
