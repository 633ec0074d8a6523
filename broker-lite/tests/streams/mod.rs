//! Client side of the listener tests: a broker with several listeners on its
//! own runtime, and TLS, WebSocket and WebSocket-over-TLS connections that an
//! MQTT client of exact bytes can use like a TCP socket.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use broker_lite::config::{ListenerConfig, TlsConfig};
use broker_lite::{Broker, Config, MetricsSnapshot};
use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream};
use mqtt_proto::codec::{read_packet, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a test waits for something that should happen.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A plain listener on an ephemeral loopback port.
pub(crate) fn plain() -> ListenerConfig {
    ListenerConfig::plain(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A WebSocket listener on `/mqtt`.
pub(crate) fn websocket(tls: Option<TlsConfig>) -> ListenerConfig {
    ListenerConfig {
        tls,
        websocket: true,
        path: Some("/mqtt".into()),
        ..plain()
    }
}

/// A TLS listener.
pub(crate) fn tls(tls: TlsConfig) -> ListenerConfig {
    ListenerConfig {
        tls: Some(tls),
        ..plain()
    }
}

/// TLS with a server certificate and no client certificates.
pub(crate) fn server_tls(cert: &Path, key: &Path) -> TlsConfig {
    TlsConfig {
        cert_file: cert.to_path_buf(),
        key_file: key.to_path_buf(),
        client_ca_file: None,
        require_client_cert: false,
        use_cn_as_username: false,
    }
}

/// A broker with the given listeners on its own runtime; shut down when dropped.
pub(crate) struct Brokers {
    pub rt: tokio::runtime::Runtime,
    broker: Option<Broker>,
    /// The port of each listener, in the order given.
    pub ports: Vec<u16>,
}

impl Brokers {
    pub(crate) fn start(listeners: Vec<ListenerConfig>, edit: impl FnOnce(&mut Config)) -> Brokers {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut config = Config {
            listeners,
            sys_interval_secs: 0,
            ..Config::default()
        };
        edit(&mut config);
        let broker = rt.block_on(Broker::start(config)).expect("broker starts");
        let ports = broker.local_addrs().iter().map(SocketAddr::port).collect();
        Brokers {
            rt,
            broker: Some(broker),
            ports,
        }
    }

    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        self.broker.as_ref().expect("running").metrics().snapshot()
    }

    pub(crate) fn addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i]))
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(WAIT, broker.shutdown()).await });
        }
    }
}

/// A byte stream to the broker: TCP, TLS, WebSocket or WebSocket over TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// TLS client configuration trusting `ca`, with a client certificate if given.
pub(crate) fn tls_client(ca: &Path, client: Option<(&Path, &Path)>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read CA") {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .expect("read client cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("client cert PEM");
            let key = PrivateKeyDer::from_pem_file(key).expect("client key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
    };
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` (server name 127.0.0.1).
pub(crate) async fn connect_tls(addr: SocketAddr, tls: &TlsConnector) -> io::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    Ok(Box::new(tls.connect(name, tcp).await?))
}

/// A WebSocket connection (subprotocol `mqtt`) on `stream` to `path`.
pub(crate) async fn connect_ws<S>(stream: S, addr: SocketAddr, path: &str) -> io::Result<WsIo<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .map_err(io::Error::other)?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
    let (ws, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(io::Error::other)?;
    let chosen = response.headers().get("sec-websocket-protocol").cloned();
    assert_eq!(
        chosen,
        Some(HeaderValue::from_static("mqtt")),
        "subprotocol answered"
    );
    Ok(WsIo {
        ws,
        pending: Bytes::new(),
    })
}

/// A client WebSocket as bytes; `send_frames` controls how bytes are cut into messages.
pub(crate) struct WsIo<S> {
    pub ws: WebSocketStream<S>,
    pending: Bytes,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsIo<S> {
    /// Send each slice as its own binary message.
    pub(crate) async fn send_frames(&mut self, frames: &[&[u8]]) {
        use futures_util::SinkExt;
        for f in frames {
            self.ws
                .send(Message::Binary(Bytes::copy_from_slice(f)))
                .await
                .expect("send a WebSocket message");
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(b))) => self.pending = b,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut ws = Pin::new(&mut self.ws);
        ready!(ws.as_mut().poll_ready(cx)).map_err(io::Error::other)?;
        ws.start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io::Error::other)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

/// An MQTT client of exact bytes over any stream.
pub(crate) struct Mqtt {
    pub io: Box<dyn Io>,
    buf: BytesMut,
}

impl Mqtt {
    pub(crate) fn new(io: Box<dyn Io>) -> Mqtt {
        Mqtt {
            io,
            buf: BytesMut::new(),
        }
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("send");
        self.io.flush().await.expect("flush");
    }

    /// The next packet; `None` when the broker closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<Packet> {
        let read = async {
            loop {
                if let Some(p) = read_packet(&mut self.buf, 1 << 28).expect("valid packet") {
                    return Some(p);
                }
                match self.io.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .unwrap_or_else(|_| panic!("no packet or close within {WAIT:?}"))
    }

    /// Wait until the broker closes the connection; panics on a packet or after `WAIT`.
    pub(crate) async fn expect_closed(&mut self) {
        if let Some(p) = self.recv().await {
            panic!("expected the connection to close, got {p:?}");
        }
    }
}
