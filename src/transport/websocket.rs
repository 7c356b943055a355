//! WebSocket as a transport: the HTTP upgrade (path, subprotocol and Origin
//! checked, as RabbitMQ's Web-STOMP / Web-MQTT and mosquitto do) and a byte stream
//! over the connection's messages that any front serves. A protocol's packets may
//! span messages and a message may carry several: the front's codec reassembles.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::transport::{Duplex, Goodbye, WriteHalf};

/// Where a protocol is served on its WebSocket listener.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The request path; `None`: any (nats-server's websocket listener takes any).
    pub(crate) path: Option<&'static str>,
    /// The subprotocols it speaks. A client offering others only is refused (400);
    /// one offering none is served.
    pub(crate) subprotocols: &'static [&'static str],
}

/// The read buffer of a WebSocket connection.
const READ_BUFFER: usize = 8 * 1024;

/// MQTT over WebSocket (MQTT 5.0 section 6; "mqttv3.1" for older clients).
pub(crate) const MQTT: Endpoint = Endpoint {
    path: Some("/mqtt"),
    subprotocols: &["mqtt", "mqttv3.1"],
};

/// STOMP over WebSocket, as RabbitMQ's Web-STOMP.
pub(crate) const STOMP: Endpoint = Endpoint {
    path: Some("/ws"),
    subprotocols: &["v12.stomp", "v11.stomp", "v10.stomp"],
};

/// NATS over WebSocket, as nats-server's `websocket` block (nats.ws, nats-py).
pub(crate) const NATS: Endpoint = Endpoint {
    path: None,
    subprotocols: &[],
};

/// Whether a page from `origin` may connect: one of `allowed` (`*`: any), or, if
/// none are configured, a page served by the host the client connected to (the
/// `Origin`'s host is the `Host`'s, ports aside).
fn origin_allowed(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    if !allowed.is_empty() {
        return allowed
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(origin));
    }
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let bare = |h: &str| h.rsplit_once(':').map_or(h, |(name, _)| name).to_owned();
    host.is_some_and(|h| bare(h).eq_ignore_ascii_case(&bare(origin_host)))
}

// The callback's `Result<Response, ErrorResponse>` is the shape tungstenite requires.
#[allow(clippy::result_large_err)]
/// Runs the server side of the upgrade within `timeout`; the error says why it
/// failed (the client got 400, 403 or 404 when the request was refused).
pub(crate) async fn accept<S: Duplex>(
    stream: S,
    endpoint: &'static Endpoint,
    origins: &[String],
    max_message: usize,
    timeout: Duration,
) -> Result<WsStream<S>, String> {
    let check = |request: &Request, response: Response| check(request, response, endpoint, origins);
    // tungstenite allocates its read buffer up front (128 KiB by default): an idle
    // connection should cost what a TCP one does. Writes are already batched by the
    // fronts, one message per write, so they go out at once.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let certificate = stream.client_certificate().map(<[u8]>::to_vec);
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config));
    match tokio::time::timeout(timeout, upgrade).await {
        Ok(Ok(ws)) => Ok(WsStream::new(ws, certificate)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no WebSocket upgrade in time".into()),
    }
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_owned()));
    *response.status_mut() = status;
    response
}

#[allow(clippy::result_large_err)]
fn check(
    request: &Request,
    mut response: Response,
    endpoint: &Endpoint,
    origins: &[String],
) -> Result<Response, ErrorResponse> {
    if let Some(path) = endpoint.path.filter(|p| *p != request.uri().path()) {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            &format!("not found: use {path}"),
        ));
    }
    let text = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(origin) = text(header::ORIGIN) {
        if !origin_allowed(origins, origin, text(header::HOST)) {
            return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    if let Some(offered) = text(header::SEC_WEBSOCKET_PROTOCOL) {
        let chosen = offered.split(',').map(str::trim).find(|p| {
            endpoint
                .subprotocols
                .iter()
                .any(|s| s.eq_ignore_ascii_case(p))
        });
        let Some(chosen) = chosen else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unsupported subprotocol: use one of {:?}",
                    endpoint.subprotocols
                ),
            ));
        };
        let value = HeaderValue::from_str(chosen)
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "bad subprotocol"))?;
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    Ok(response)
}

/// A WebSocket connection as a byte stream: reads return the bytes of the binary
/// (or text) messages received, each write is sent as one binary message. Pings
/// are answered by the WebSocket layer; a close frame ends the stream, and closing
/// it sends one with the front's [`Goodbye`].
#[derive(Debug)]
pub(crate) struct WsStream<S> {
    read: WsRead<S>,
    write: WsWrite<S>,
    /// The TLS client certificate under the WebSocket, if any.
    certificate: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    fn new(ws: WebSocketStream<S>, certificate: Option<Vec<u8>>) -> WsStream<S> {
        let (sink, messages) = ws.split();
        WsStream {
            certificate,
            read: WsRead {
                messages,
                unread: Bytes::new(),
            },
            write: WsWrite {
                sink,
                goodbye: Some(Goodbye::Normal),
            },
        }
    }
}

/// The read half of a [`WsStream`].
#[derive(Debug)]
pub(crate) struct WsRead<S> {
    messages: SplitStream<WebSocketStream<S>>,
    /// What is left of the last message received.
    unread: Bytes,
}

/// The write half of a [`WsStream`].
#[derive(Debug)]
pub(crate) struct WsWrite<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    /// What the close frame will say (`None` once it is sent).
    goodbye: Option<Goodbye>,
}

/// The largest close reason: a control frame carries at most 125 bytes, two of
/// them the status code.
const MAX_CLOSE_REASON: usize = 123;

/// The close frame saying `goodbye` (RFC 6455 section 7.4 status codes).
fn close_frame(goodbye: &Goodbye) -> CloseFrame {
    let (code, reason) = match goodbye {
        Goodbye::Normal => (CloseCode::Normal, ""),
        Goodbye::GoingAway => (CloseCode::Away, "server shutting down"),
        Goodbye::ProtocolError(why) => (CloseCode::Protocol, why.as_str()),
        Goodbye::Policy(why) => (CloseCode::Policy, why.as_str()),
        Goodbye::TooBig(why) => (CloseCode::Size, why.as_str()),
    };
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].into(),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsRead<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.unread.is_empty() {
            match ready!(Pin::new(&mut self.messages).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.unread = data,
                Some(Ok(Message::Text(text))) => self.unread = Bytes::from(text),
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread[..n]);
        self.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsWrite<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.sink).poll_ready(cx)).map_err(io::Error::other)?;
        Pin::new(&mut self.sink)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.sink)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    /// Sends the close frame saying the goodbye, then closes.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(frame) = self.goodbye.as_ref().map(close_frame) {
            // Once sent, tungstenite's close below adds no second close frame. It
            // fails if the client closed first: tungstenite has answered that one.
            let ready = ready!(Pin::new(&mut self.sink).poll_ready(cx));
            self.goodbye = None;
            if ready.is_ok() {
                let _ = Pin::new(&mut self.sink).start_send(Message::Close(Some(frame)));
            }
        }
        Pin::new(&mut self.sink)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

impl<S: Duplex> WriteHalf for WsWrite<S> {
    fn goodbye(&mut self, goodbye: Goodbye) {
        self.goodbye = Some(goodbye);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.write).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.write).poll_shutdown(cx)
    }
}

impl<S: Duplex> Duplex for WsStream<S> {
    type Read = WsRead<S>;
    type Write = WsWrite<S>;

    fn halves(self) -> (Self::Read, Self::Write) {
        (self.read, self.write)
    }

    fn client_certificate(&self) -> Option<&[u8]> {
        self.certificate.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_reason_fits_a_control_frame_on_a_character_boundary() {
        let long = format!("{}é{}", "x".repeat(122), "y".repeat(50));
        let frame = close_frame(&Goodbye::ProtocolError(long));
        assert_eq!(frame.code, CloseCode::Protocol);
        assert_eq!(frame.reason.as_str(), "x".repeat(122));
        let frame = close_frame(&Goodbye::TooBig("Packet too large".into()));
        assert_eq!(
            (frame.code, frame.reason.as_str()),
            (CloseCode::Size, "Packet too large")
        );
        assert_eq!(close_frame(&Goodbye::Normal).code, CloseCode::Normal);
        assert_eq!(close_frame(&Goodbye::GoingAway).code, CloseCode::Away);
    }

    #[test]
    fn the_default_origin_rule_is_the_same_host() {
        let same: &[String] = &[];
        assert!(origin_allowed(
            same,
            "http://localhost:8080",
            Some("localhost:8083")
        ));
        assert!(origin_allowed(
            same,
            "https://Broker.example",
            Some("broker.example:15674")
        ));
        assert!(!origin_allowed(
            same,
            "http://evil.example",
            Some("localhost:8083")
        ));
        assert!(!origin_allowed(same, "http://localhost", None));
        let listed = ["https://app.example".to_owned()];
        assert!(origin_allowed(
            &listed,
            "https://app.example",
            Some("localhost")
        ));
        assert!(!origin_allowed(
            &listed,
            "http://localhost",
            Some("localhost")
        ));
    }
}
