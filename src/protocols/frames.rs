//! Decoded frames from a byte stream, like tokio-util's `FramedRead`, except that an
//! idle connection holds no read buffer: the buffer is given back when the socket
//! has nothing to read, nothing partial is buffered and reads are not coming in
//! quick succession. `FramedRead` keeps
//! its 8 KiB (or whatever a large frame grew it to) for the life of the connection,
//! which made a buffer the largest part of an idle client's cost.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

use super::socket::Pace;

/// Bytes asked of the socket per read when the buffer has little room left.
const READ_CHUNK: usize = 8 * 1024;
/// Below this much spare room the buffer grows by [`READ_CHUNK`] before a read.
const MIN_ROOM: usize = 1024;

/// Frames a shell handles in one go (see [`FrameReader::handle_buffered`]) before it
/// writes what they produced and looks at its other events.
const INPUT_BATCH: usize = 64;

#[derive(Debug)]
pub(crate) struct FrameReader<R, D> {
    inner: R,
    decoder: D,
    buf: BytesMut,
    /// Reads coming close together keep the buffer between them: giving it back
    /// after each one cost a busy connection an allocation (and the allocator
    /// a trim of its heap top) per read.
    pace: Pace,
    eof: bool,
}

impl<R, D> FrameReader<R, D> {
    pub(crate) fn new(inner: R, decoder: D) -> FrameReader<R, D> {
        FrameReader {
            inner,
            decoder,
            buf: BytesMut::new(),
            pace: Pace::default(),
            eof: false,
        }
    }

    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub(crate) fn decoder(&self) -> &D {
        &self.decoder
    }

    pub(crate) fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Hands the frames already buffered to `handle`, up to [`INPUT_BATCH`], without
    /// reading: a shell handles a burst of small frames in one wake-up instead of
    /// one trip through its select each. Stops at the first error `handle` returns.
    pub(crate) fn handle_buffered<E>(
        &mut self,
        mut handle: impl FnMut(Result<D::Item, D::Error>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        D: Decoder,
    {
        for _ in 0..INPUT_BATCH {
            if self.eof {
                break;
            }
            match self.decoder.decode(&mut self.buf).transpose() {
                Some(frame) => handle(frame)?,
                None => break,
            }
        }
        Ok(())
    }
}

impl<R, D> FrameReader<R, D>
where
    R: AsyncRead + Unpin,
    D: Decoder + Unpin,
{
    /// The next frame if it can be had without waiting (buffered, or in the socket
    /// already): a shell about to end looks at what its peer sent before the end.
    pub(crate) async fn next_ready(&mut self) -> Option<Result<D::Item, D::Error>> {
        std::future::poll_fn(|cx| match Pin::new(&mut *self).poll_next(cx) {
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }
}

impl<R, D> Stream for FrameReader<R, D>
where
    R: AsyncRead + Unpin,
    D: Decoder + Unpin,
{
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.eof {
                // What is left must decode to whole frames (the decoder's decode_eof
                // reports a truncated one), then the stream ends.
                return Poll::Ready(this.decoder.decode_eof(&mut this.buf).transpose());
            }
            if let Some(frame) = this.decoder.decode(&mut this.buf)? {
                return Poll::Ready(Some(Ok(frame)));
            }
            if this.buf.capacity() - this.buf.len() < MIN_ROOM {
                this.buf.reserve(READ_CHUNK);
            }
            match poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf) {
                Poll::Pending => {
                    if this.buf.is_empty() && !this.pace.busy() {
                        this.buf = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => this.pace.tick(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::LinesCodec;

    #[tokio::test]
    async fn frames_across_reads_then_end() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, LinesCodec::new());
        client.write_all(b"one\ntw").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "one");
        client.write_all(b"o\nthree").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "two");
        drop(client);
        // LinesCodec's decode_eof yields an unterminated last line.
        assert_eq!(reader.next().await.unwrap().unwrap(), "three");
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn idle_reader_holds_no_buffer() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, LinesCodec::new());
        client.write_all(b"hello\n").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "hello");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next());
        assert!(waiting.await.is_err(), "nothing more was sent");
        assert_eq!(reader.buf.capacity(), 0);
        // A partial frame is kept while waiting for the rest.
        client.write_all(b"par").await.unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), reader.next());
        assert!(waiting.await.is_err());
        assert_eq!(&reader.buf[..], b"par");
        client.write_all(b"tial\n").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "partial");
    }

    #[tokio::test]
    async fn buffered_frames_without_reading() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, LinesCodec::new());
        client.write_all(b"a\nb\nb\nc").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "a");
        let mut got = Vec::new();
        let handled: Result<(), ()> = reader.handle_buffered(|line| {
            got.push(line.unwrap());
            Ok(())
        });
        assert_eq!(
            (handled, got),
            (Ok(()), vec!["b".to_string(), "b".to_string()])
        );
        // c is incomplete: nothing more is handled until the rest arrives.
        assert_eq!(reader.handle_buffered(|_| Err("none expected")), Ok(()));
        client.write_all(b"\n").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "c");
    }

    #[tokio::test]
    async fn buffered_frames_stop_at_the_first_error() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(server, LinesCodec::new());
        client.write_all(b"a\nb\nc\n").await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), "a");
        let mut seen = 0;
        let handled = reader.handle_buffered(|_| {
            seen += 1;
            Err("stop")
        });
        assert_eq!((handled, seen), (Err("stop"), 1));
        assert_eq!(reader.next().await.unwrap().unwrap(), "c");
    }
}
