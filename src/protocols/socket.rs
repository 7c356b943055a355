//! What every front does with its socket alike: writes bounded by a deadline, the
//! goodbye (last bytes, then draining the client's input before closing), and
//! noting when the client last sent anything.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::router::{Held, Memory};

/// How long one socket write may take before the client counts as gone (a client
/// that stops reading must not hold its task, its session or a takeover forever;
/// nats-server's write deadline is the same 10 s).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the last bytes of a closing connection, and reading what the client
/// still sends after them, may take.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Events closer together than this count as a busy connection (see [`Pace`]).
const BUSY_GAP: Duration = Duration::from_millis(10);

/// Whether a connection's reads (or writes) come in quick succession: a busy
/// connection keeps its buffers from one to the next, an idle one gives them back
/// (an idle client's cost is what it holds between events).
#[derive(Debug, Default)]
pub(crate) struct Pace {
    last: Option<Instant>,
    busy: bool,
}

impl Pace {
    /// Notes one event; busy if it came within [`BUSY_GAP`] of the previous one.
    pub(crate) fn tick(&mut self) {
        let now = Instant::now();
        self.busy = self.last.is_some_and(|t| now.duration_since(t) < BUSY_GAP);
        self.last = Some(now);
    }

    pub(crate) fn busy(&self) -> bool {
        self.busy
    }
}

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

/// Writes all of `bytes` within [`WRITE_TIMEOUT`]. Until they are written they count
/// toward the memory bound: a client that does not read holds them (up to the write
/// timeout), and enough such clients must hold publishers back as any backlog does.
pub(crate) async fn write<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    memory: &Arc<Memory>,
) -> Result<(), WriteError> {
    let mut unwritten = Held::new(memory.clone());
    unwritten.add(bytes.len());
    // The flush matters to TLS, whose stream may keep records written into it
    // until flushed; for TCP it is a no-op.
    let written = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, written).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriteError::Io(e)),
        Err(_) => Err(WriteError::TimedOut),
    }
}

/// Writes all of `out` within [`WRITE_TIMEOUT`] and empties it, giving back its
/// memory when a burst made it large.
pub(crate) async fn flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    out: &mut BytesMut,
    memory: &Arc<Memory>,
) -> Result<(), WriteError> {
    let written = write(writer, out, memory).await;
    out.clear();
    if out.capacity() > 2 * super::delivery::WRITE_BUDGET {
        *out = BytesMut::new();
    }
    written
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
        // On the heap: this future is part of every connection's task.
        let mut scratch = vec![0u8; 4096];
        while let Ok(n) = reader.read(&mut scratch).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A reader that notes when bytes last arrived: a peer sending a large frame
/// slowly is alive although no whole frame has been decoded yet (the heart-beat
/// and keep-alive rules count any data).
#[derive(Debug)]
pub(crate) struct Watched<R> {
    inner: R,
    last_read: Instant,
}

impl<R> Watched<R> {
    pub(crate) fn new(inner: R) -> Watched<R> {
        Watched {
            inner,
            last_read: Instant::now(),
        }
    }

    /// When bytes last arrived (or when watching began).
    pub(crate) fn last_read(&self) -> Instant {
        self.last_read
    }

    /// Counts the time until now as activity (input left unread on purpose).
    pub(crate) fn touch(&mut self) {
        self.last_read = Instant::now();
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last_read = Instant::now();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_a_client_has_not_taken_count_toward_the_memory_bound() {
        let memory = Arc::new(Memory::new(1 << 20));
        let (mut ours, mut client) = tokio::io::duplex(16);
        let writing = {
            let memory = memory.clone();
            tokio::spawn(async move { write(&mut ours, &[7u8; 1000], &memory).await })
        };
        // The client has not read: the write waits, and its bytes are held.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(memory.held(), 1000);
        let mut got = vec![0u8; 1000];
        client.read_exact(&mut got).await.unwrap();
        writing.await.unwrap().unwrap();
        assert_eq!(memory.held(), 0);
    }
}
