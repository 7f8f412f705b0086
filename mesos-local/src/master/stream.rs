//! A framework's SUBSCRIBE event stream: [`EventSink`] (the master's end, RecordIO-encoding
//! events in the stream's content type) and [`EventStream`] (the HTTP body's end, merging
//! queued events with periodic HEARTBEATs and reporting when the body is dropped).
//!
//! Invariants: records leave in the order they were sent; the periodic heartbeat never
//! overtakes a queued event (queued events are drained first); the stream ends right after
//! the last queued record once every sink is dropped; `on_close` runs exactly once, when
//! the body is dropped (client gone or stream finished).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use retz_proto::ContentType;
use retz_proto::recordio;
use retz_proto::scheduler::{Event, event};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// The master's end of one SUBSCRIBE stream.
#[derive(Debug)]
pub struct EventSink {
    stream_id: String,
    content_type: ContentType,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Encodes `event` as one RecordIO record.
pub fn encode_event(content_type: ContentType, event: &Event) -> Bytes {
    let mut buf = BytesMut::new();
    recordio::encode_message(content_type, event, &mut buf);
    buf.freeze()
}

/// A HEARTBEAT event.
pub fn heartbeat_event() -> Event {
    Event {
        r#type: Some(event::Type::Heartbeat as i32),
        ..Default::default()
    }
}

impl EventSink {
    /// A new stream: the sink and the receiver its body reads.
    pub fn channel(
        stream_id: String,
        content_type: ContentType,
    ) -> (EventSink, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            EventSink {
                stream_id,
                content_type,
                tx,
            },
            rx,
        )
    }

    /// The `Mesos-Stream-Id` of the stream.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Queues an event; `false` if the body is gone.
    pub fn send(&self, event: &Event) -> bool {
        self.tx.send(encode_event(self.content_type, event)).is_ok()
    }
}

/// The body of a SUBSCRIBE reply.
pub struct EventStream {
    rx: mpsc::UnboundedReceiver<Bytes>,
    heartbeat: Option<(Interval, Bytes)>,
    on_close: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl EventStream {
    /// A body reading `rx`, adding a HEARTBEAT record every `heartbeat_interval` (the
    /// first one `heartbeat_interval` from now), and calling `on_close` when dropped.
    pub fn new(
        rx: mpsc::UnboundedReceiver<Bytes>,
        heartbeat: Option<(Duration, ContentType)>,
        on_close: Option<Box<dyn FnOnce() + Send + Sync>>,
    ) -> EventStream {
        let heartbeat = heartbeat.map(|(every, ct)| {
            let every = every.max(Duration::from_millis(1));
            let mut interval = tokio::time::interval_at(Instant::now() + every, every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            (interval, encode_event(ct, &heartbeat_event()))
        });
        EventStream {
            rx,
            heartbeat,
            on_close,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => return Poll::Ready(Some(Ok(b))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if let Some((interval, record)) = &mut self.heartbeat
            && interval.poll_tick(cx).is_ready()
        {
            return Poll::Ready(Some(Ok(record.clone())));
        }
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if let Some(f) = self.on_close.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn decode(bytes: &[u8]) -> Event {
        let records = recordio::decode_all(bytes, 1 << 20).unwrap();
        assert_eq!(records.len(), 1);
        ContentType::Json.decode(&records[0]).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn events_then_heartbeats_then_end_and_close_callback() {
        let (sink, rx) = EventSink::channel("s".into(), ContentType::Json);
        let closed = Arc::new(AtomicUsize::new(0));
        let c2 = closed.clone();
        let mut stream = EventStream::new(
            rx,
            Some((Duration::from_secs(15), ContentType::Json)),
            Some(Box::new(move || {
                c2.fetch_add(1, Ordering::SeqCst);
            })),
        );
        let err = Event {
            r#type: Some(event::Type::Error as i32),
            error: Some(event::Error {
                message: "x".into(),
            }),
            ..Default::default()
        };
        assert!(sink.send(&err));
        assert_eq!(decode(&stream.next().await.unwrap().unwrap()), err);
        // Nothing queued: the next item is the periodic heartbeat (virtual time).
        let hb = stream.next().await.unwrap().unwrap();
        assert_eq!(decode(&hb), heartbeat_event());
        drop(sink);
        assert!(stream.next().await.is_none());
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        drop(stream);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn sink_reports_a_dropped_body() {
        let (sink, rx) = EventSink::channel("s".into(), ContentType::Protobuf);
        assert!(sink.send(&heartbeat_event()));
        drop(rx);
        assert!(!sink.send(&heartbeat_event()));
        assert_eq!(sink.stream_id(), "s");
    }
}
