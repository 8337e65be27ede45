//! A transport that counts the bytes it receives.
//!
//! tokio-modbus's RTU codec drops a frame whose CRC is wrong and keeps looking for a good
//! one, so a corrupt reply reaches the client only as silence: a timeout. Counting the
//! bytes under the codec tells the two apart: a timed-out request during which bytes
//! arrived was a corrupt reply (a CRC error, noise on the line); one with no bytes at all
//! was a slave that did not answer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Wraps `T`, adding every byte read to a shared counter.
#[derive(Debug)]
pub struct Counting<T> {
    inner: T,
    received: Arc<AtomicU64>,
}

impl<T> Counting<T> {
    /// Wraps `inner`; `received` grows by every byte read through it.
    pub fn new(inner: T, received: Arc<AtomicU64>) -> Counting<T> {
        Counting { inner, received }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let got = buf.filled().len().saturating_sub(before);
        if got > 0 {
            self.received.fetch_add(u64::try_from(got).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_read_through_the_adapter_are_counted_and_passed_on() {
        let (mut a, b) = tokio::io::duplex(64);
        let received = Arc::new(AtomicU64::new(0));
        let mut b = Counting::new(b, received.clone());
        a.write_all(b"hello").await.expect("write");
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"hello");
        assert_eq!(received.load(Ordering::Relaxed), 5);
    }
}
