//! Server-sent events: a handler answers `Out::Events` with the receiving end of a channel its
//! producer task writes to; the front sends each event as it comes, with a keep-alive comment
//! every `SSE_KEEP_ALIVE_MS`. The stream ends when the producer does — the client went away
//! (the producer's next send fails), it had nothing more to say, its time was up
//! (`SSE_STREAM_MS`; the client reconnects), or the front is stopping.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use warp::sse::Event;
use warp::Reply;

use crate::limits::SSE_KEEP_ALIVE_MS;

/// The events a handler's producer sends, in order.
pub struct Feed(tokio::sync::mpsc::Receiver<Event>);

/// A feed and the sender its producer writes to.
pub fn feed() -> (tokio::sync::mpsc::Sender<Event>, Feed) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    (tx, Feed(rx))
}

impl futures::Stream for Feed {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

/// The streaming answer: `text/event-stream`, not cached, not sniffed.
pub fn reply(feed: Feed, request_id: &str) -> warp::reply::Response {
    let keep = warp::sse::keep_alive().interval(Duration::from_millis(SSE_KEEP_ALIVE_MS)).stream(feed);
    let mut r = warp::sse::reply(keep).into_response();
    let h = r.headers_mut();
    if let Ok(v) = warp::http::HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    h.insert("x-content-type-options", warp::http::HeaderValue::from_static("nosniff"));
    h.insert("cache-control", warp::http::HeaderValue::from_static("no-store"));
    // A buffering proxy (nginx) would hold the events back until the stream ends.
    h.insert("x-accel-buffering", warp::http::HeaderValue::from_static("no"));
    r
}
