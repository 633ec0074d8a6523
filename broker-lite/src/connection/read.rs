//! Reading from the socket without holding a buffer while idle: the first
//! bytes of an empty buffer land on the stack, and only then is memory reserved.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// Bytes reserved for each read.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Bytes reserved for reads before CONNECT: most CONNECT packets are small.
pub(super) const CONNECT_CHUNK: usize = 512;
/// Stack bytes that take the first read of an empty buffer.
const PROBE: usize = 512;

/// Read what the stream has into `rbuf`. An empty buffer gets no memory until
/// bytes arrive: the first read goes to a small buffer on the stack (not part
/// of the task), so idle connections hold no read buffer while they wait.
pub(super) fn poll_read_some<S>(
    stream: &mut S,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
    chunk: usize,
) -> Poll<io::Result<usize>>
where
    S: AsyncRead + Unpin,
{
    if !rbuf.is_empty() {
        if rbuf.capacity() - rbuf.len() < chunk / 4 {
            rbuf.reserve(chunk);
        }
        return poll_read_spare(stream, cx, rbuf);
    }
    let mut probe = [0u8; PROBE];
    let mut first = ReadBuf::new(&mut probe);
    match Pin::new(&mut *stream).poll_read(cx, &mut first) {
        Poll::Ready(r) => r?,
        Poll::Pending => {
            // Nothing to read and nothing kept: an idle connection gives its
            // empty buffer's memory back while it waits (the CONNECT's 512
            // bytes, or a busy connection's 16 KiB).
            if rbuf.capacity() > 0 {
                *rbuf = BytesMut::new();
            }
            return Poll::Pending;
        }
    }
    let n = first.filled().len();
    if n == 0 {
        return Poll::Ready(Ok(0));
    }
    rbuf.reserve(chunk);
    rbuf.extend_from_slice(first.filled());
    // More may be waiting. An error or end here shows again at the next read;
    // a pending read only leaves a wake-up behind.
    match poll_read_spare(stream, cx, rbuf) {
        Poll::Ready(Ok(more)) => Poll::Ready(Ok(n + more)),
        Poll::Ready(Err(_)) | Poll::Pending => Poll::Ready(Ok(n)),
    }
}

/// One read into the spare capacity of `rbuf`.
fn poll_read_spare<S>(
    stream: &mut S,
    cx: &mut Context<'_>,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<usize>>
where
    S: AsyncRead + Unpin,
{
    pin!(stream.read_buf(rbuf)).poll(cx)
}

#[cfg(test)]
mod read_tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn an_emptied_buffer_is_given_back_when_nothing_more_comes() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let mut rbuf = BytesMut::new();
        client.write_all(&[7u8; 3000]).await.unwrap();
        let n = poll_fn(|cx| poll_read_some(&mut server, cx, &mut rbuf, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!(n, 3000);
        assert!(rbuf.capacity() >= READ_CHUNK, "{}", rbuf.capacity());
        // The packets are taken out; nothing more is on the way.
        rbuf.clear();
        let waiting = poll_fn(|cx| {
            Poll::Ready(poll_read_some(&mut server, cx, &mut rbuf, READ_CHUNK).is_pending())
        })
        .await;
        assert!(waiting, "nothing to read");
        assert_eq!(
            rbuf.capacity(),
            0,
            "an idle connection holds no read buffer"
        );
        // And the next bytes are read as before.
        client.write_all(b"abc").await.unwrap();
        let n = poll_fn(|cx| poll_read_some(&mut server, cx, &mut rbuf, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!((n, &rbuf[..]), (3, &b"abc"[..]));
    }
}
