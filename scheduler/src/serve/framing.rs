//! [`FramingErrors`]: an I/O wrapper under hyper that gives hyper's own error answers a
//! JSON body. When a request cannot be parsed (malformed framing such as
//! `Content-Length: -1`, a URI over hyper's limit, headers over the buffer), hyper answers
//! 400/414/431 itself with an empty body and closes the connection; the service never
//! sees the request. This wrapper recognises such an answer in the outgoing bytes and
//! writes the same status with the API's [`ErrorBody`] instead.
//!
//! Recognition is strict, so no response of the API (they all carry `server:
//! retz-server-...`) and no body bytes are ever altered: one write that is a complete
//! head of at most [`MAX_HEAD`] bytes, `HTTP/1.1 4xx`, with only `connection`,
//! `content-length: 0` and `date` headers, written while no response of the service is
//! in progress on the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use retz_proto::api::ErrorBody;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Activity;

/// Longest head hyper writes for its own errors.
const MAX_HEAD: usize = 512;

/// The JSON answer for a 4xx hyper produced itself.
pub(crate) fn error_response(status: u16, reason: &str, message: &str) -> Vec<u8> {
    let body = serde_json::to_string(&ErrorBody::new(message)).unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The status of `buf` when it is one of hyper's own bodiless error answers.
fn hyper_error_status(buf: &[u8]) -> Option<u16> {
    if buf.len() > MAX_HEAD || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(buf).ok()?;
    let mut lines = text.trim_end().split("\r\n");
    let status: u16 = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    if !(400..500).contains(&status) {
        return None;
    }
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => empty = value.trim() == "0",
            "connection" | "date" => {}
            _ => return None,
        }
    }
    empty.then_some(status)
}

fn message(status: u16) -> (&'static str, &'static str) {
    match status {
        414 => (
            "URI Too Long",
            "request URI is over the server's limit; shorten the path and query",
        ),
        431 => (
            "Request Header Fields Too Large",
            "request headers are over the server's limit; send fewer or shorter headers",
        ),
        408 => (
            "Request Timeout",
            "request headers did not arrive in time; connection closed",
        ),
        _ => (
            "Bad Request",
            "malformed HTTP request (framing, Content-Length or header syntax); connection closed",
        ),
    }
}

/// The wrapper (see the module doc).
pub(crate) struct FramingErrors<S> {
    inner: S,
    activity: Arc<Activity>,
    /// A replacement being written, and how much of it is out.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> FramingErrors<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        FramingErrors {
            inner,
            activity,
            pending: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FramingErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FramingErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none()
            && !this.activity.responding()
            && let Some(status) = hyper_error_status(buf)
        {
            let (reason, text) = message(status);
            this.pending = Some((error_response(status, reason, text), 0, buf.len()));
        }
        if let Some((bytes, written, claimed)) = &mut this.pending {
            while *written < bytes.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            let claimed = *claimed;
            this.pending = None;
            return Poll::Ready(Ok(claimed));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
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
    use super::*;

    #[test]
    fn only_hypers_bodiless_error_heads_are_recognised() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                          content-length: 0\r\ndate: Thu, 03 Dec 2026 06:00:00 GMT\r\n\r\n";
        assert_eq!(hyper_error_status(hyper_431), Some(431));
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                     server: retz-server-0.1.0\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(ours), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(ok), None);
        let body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore";
        assert_eq!(hyper_error_status(body), None);
        let r = String::from_utf8(error_response(431, "X", "too big")).unwrap();
        assert!(
            r.ends_with(r#"{"command":"error","status":"too big"}"#),
            "{r}"
        );
    }
}
