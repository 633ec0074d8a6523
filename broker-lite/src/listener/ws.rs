//! MQTT over WebSocket: the server handshake (subprotocol `mqtt`, optional
//! path), and a byte stream over the binary messages for the connection.
//!
//! MQTT packets and WebSocket messages need not line up: a packet may span
//! messages and a message may hold several packets [MQTT-6.0.0-2], so the
//! connection sees a plain stream of bytes and decodes it as it would TCP.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Subprotocols a client may offer, in order of preference: `mqtt` for MQTT
/// 3.1.1, `mqttv3.1` from clients of the older MQTT 3.1.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Bytes tungstenite reads into at a time, reserved for each connection.
const READ_BUFFER: usize = 8 * 1024;

/// Answer the WebSocket handshake on `stream`. `path`: the only HTTP path
/// accepted. Messages larger than `max_message` bytes end the connection.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
pub(crate) async fn accept<S>(
    stream: S,
    path: Option<&str>,
    max_message: usize,
) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // tungstenite reserves its whole read buffer per connection (128 KiB by
    // default); MQTT messages are mostly small, and a larger one still grows it.
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let callback = |request: &Request, response: Response| answer(request, response, path);
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsStream {
        ws,
        pending: Bytes::new(),
    })
}

/// Check the upgrade request and pick the subprotocol [MQTT-6.0.0-3].
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
fn answer(
    request: &Request,
    mut response: Response,
    path: Option<&str>,
) -> Result<Response, ErrorResponse> {
    if let Some(path) = path {
        if request.uri().path() != path {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                &format!("MQTT is served on {path}"),
            ));
        }
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let Some(chosen) = SUBPROTOCOLS.iter().find(|p| offered.contains(p)) else {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must offer mqtt",
        ));
    };
    response
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
    Ok(response)
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_string()));
    *response.status_mut() = status;
    response
}

/// A WebSocket seen as a byte stream: reads give the bytes of binary messages
/// in order, each write goes out as one binary message.
pub(crate) struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// The rest of the binary message being read.
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            let next = ready!(Pin::new(&mut self.ws).poll_next(cx));
            match next {
                // The end of the stream, or a close frame: end of file.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(bytes))) => self.pending = bytes,
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "[MQTT-6.0.0-1] text WebSocket message; MQTT travels in binary messages",
                    )))
                }
                Some(Err(e)) => return Poll::Ready(ws_to_io(e).map(|_| ())),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut ws = Pin::new(&mut self.ws);
        if let Err(e) = ready!(ws.as_mut().poll_ready(cx)) {
            return Poll::Ready(ws_to_io(e).map(|_| 0));
        }
        let message = Message::Binary(Bytes::copy_from_slice(buf));
        match ws.start_send(message) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(e) => Poll::Ready(ws_to_io(e).map(|_| 0)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_flush(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(ws_to_io(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.ws).poll_close(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(ws_to_io(e)),
        }
    }
}

/// A WebSocket error as an I/O result: a closed connection is the end of the
/// stream (`Ok`), everything else an error that says what happened.
fn ws_to_io(e: WsError) -> io::Result<()> {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Ok(()),
        WsError::Io(e) => Err(e),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket: {other}"),
        )),
    }
}
