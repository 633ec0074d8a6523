//! A minimal MQTT 3.1.1 client connection on a tokio TCP stream.
//!
//! One large read buffer and one write buffer per connection. The hot loops use
//! readiness plus non-blocking `try_*` calls, so that every wakeup drains all the
//! bytes the socket holds and sends every queued packet in one write.

use std::io::ErrorKind;
use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use mqtt_proto::codec::{
    encode, read_packet, Connect, ConnectReturnCode, Packet, QoS, Subscribe, SubscribeReturnCode,
    PROTOCOL_LEVEL_311,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Free space ensured in the read buffer before each read.
const READ_CHUNK: usize = 256 * 1024;
/// Largest packet the tool accepts from a broker.
const MAX_PACKET: usize = 1 << 20;

/// One MQTT connection: socket, read buffer, and the packets queued for sending.
pub(crate) struct Client {
    stream: TcpStream,
    rbuf: BytesMut,
    /// Encoded packets not yet written to the socket.
    pub wbuf: BytesMut,
}

impl Client {
    /// Open a TCP connection, send CONNECT (clean session) and wait for an accepting CONNACK.
    pub(crate) async fn connect(
        addr: SocketAddr,
        client_id: &str,
        keep_alive: u16,
    ) -> Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("TCP connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut client = Client::with_buffers(stream, 4096);
        let connect = Connect {
            protocol_level: PROTOCOL_LEVEL_311,
            clean_session: true,
            keep_alive,
            client_id: client_id.to_string(),
            will: None,
            username: None,
            password: None,
        };
        encode(&Packet::Connect(connect), &mut client.wbuf);
        client.flush().await?;
        match client.next_packet().await? {
            Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Accepted => Ok(client),
            Packet::ConnAck(ack) => bail!("CONNACK refused the connection: {:?}", ack.code),
            other => bail!("expected CONNACK, got {}", other.name()),
        }
    }

    fn with_buffers(stream: TcpStream, capacity: usize) -> Client {
        Client {
            stream,
            rbuf: BytesMut::with_capacity(capacity),
            wbuf: BytesMut::with_capacity(capacity),
        }
    }

    /// Give the connection buffers sized for bulk traffic.
    pub(crate) fn grow_buffers(&mut self) {
        self.rbuf.reserve(READ_CHUNK);
        self.wbuf.reserve(64 * 1024);
    }

    /// Queue SUBSCRIBE for one filter (packet id 1) without waiting for SUBACK.
    pub(crate) fn queue_subscribe(&mut self, filter: &str, qos: QoS) {
        let sub = Subscribe {
            pkid: 1,
            filters: vec![(filter.to_string(), qos)],
        };
        encode(&Packet::Subscribe(sub), &mut self.wbuf);
    }

    /// Subscribe to one filter and wait for a SUBACK that grants it.
    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<()> {
        self.queue_subscribe(filter, qos);
        self.flush().await?;
        match self.next_packet().await? {
            Packet::SubAck(ack) => match ack.return_codes.first() {
                Some(SubscribeReturnCode::Success(_)) => Ok(()),
                _ => bail!("SUBACK refused the subscription to {filter}"),
            },
            other => bail!("expected SUBACK, got {}", other.name()),
        }
    }

    /// Send DISCONNECT; errors are ignored because the connection ends either way.
    pub(crate) async fn disconnect(mut self) {
        encode(&Packet::Disconnect, &mut self.wbuf);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Write every queued byte, waiting for the socket as needed.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.stream.write_all(&self.wbuf).await?;
        self.wbuf.clear();
        Ok(())
    }

    /// The next packet from the broker, reading as needed.
    pub(crate) async fn next_packet(&mut self) -> Result<Packet> {
        loop {
            if let Some(packet) = self.decode_one()? {
                return Ok(packet);
            }
            self.rbuf.reserve(4096);
            let n = self.stream.read_buf(&mut self.rbuf).await?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// One whole packet off the read buffer, if it holds one.
    pub(crate) fn decode_one(&mut self) -> Result<Option<Packet>> {
        read_packet(&mut self.rbuf, MAX_PACKET).context("decoding a packet from the broker")
    }

    /// Write as much of the queue as the socket takes now; the number of bytes written.
    pub(crate) fn try_flush(&mut self) -> Result<usize> {
        let mut total = 0;
        while !self.wbuf.is_empty() {
            match self.stream.try_write(&self.wbuf) {
                Ok(n) => {
                    self.wbuf.advance(n);
                    total += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("writing to the broker"),
            }
        }
        if self.wbuf.is_empty() {
            self.wbuf.clear();
        }
        Ok(total)
    }

    /// Read what the socket holds now into the read buffer; the number of bytes read.
    pub(crate) fn try_fill(&mut self) -> Result<usize> {
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => bail!("the broker closed the connection"),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e).context("reading from the broker"),
        }
    }

    /// Wait until the socket is readable, or writable when packets are queued.
    pub(crate) async fn wait(&self) -> Result<()> {
        let interest = if self.wbuf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        self.stream.ready(interest).await?;
        Ok(())
    }
}
