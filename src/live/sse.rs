//! Server-sent event streams built from a step function: the login page's and the admin
//! dashboard's streams share the queue, the ending, the restart hint and the keep-alives here.

use std::{collections::VecDeque, convert::Infallible, future::Future, time::Duration};

use axum::response::{
    IntoResponse, Response,
    sse::{Event, KeepAlive, Sse},
};

use crate::error::AppResult;

/// Events waiting to be sent, and whether the stream ends after them.
#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Event>,
    done: bool,
}

impl Outbox {
    /// Queues a named event with `data`.
    pub fn push(&mut self, event: &str, data: String) {
        self.queue
            .push_back(Event::default().event(event).data(data));
    }

    /// Queues an already built event.
    pub fn push_event(&mut self, event: Event) {
        self.queue.push_back(event);
    }

    /// Ends the stream once the queued events are sent.
    pub fn end(&mut self) {
        self.done = true;
    }

    /// Ends the stream because the server is stopping: the retry hint makes `EventSource`
    /// reconnect soon, to whichever server comes next.
    pub fn restart(&mut self) {
        self.push_event(
            Event::default()
                .retry(Duration::from_millis(500))
                .comment("restart"),
        );
        self.end();
    }
}

/// Something that produces a stream's events one step at a time.
pub trait Source: Send + 'static {
    /// Names the stream in log lines.
    const NAME: &'static str;

    /// The stream's queue.
    fn outbox(&mut self) -> &mut Outbox;

    /// Queues what changed, or waits for a change. An error ends the stream (the browser
    /// reconnects and tries again).
    fn step(&mut self) -> impl Future<Output = AppResult<()>> + Send;
}

async fn next_event<S: Source>(source: &mut S) -> Option<Event> {
    loop {
        let outbox = source.outbox();
        if let Some(event) = outbox.queue.pop_front() {
            return Some(event);
        }
        if outbox.done {
            return None;
        }
        if let Err(e) = source.step().await {
            tracing::warn!(error = ?e, stream = S::NAME, "event stream ends on an error");
            return None;
        }
    }
}

/// The `text/event-stream` response for `source`, with a keep-alive comment every 15 s.
pub fn respond<S: Source>(source: S) -> Response {
    let stream = futures::stream::unfold(source, |mut s| async move {
        next_event(&mut s)
            .await
            .map(|e| (Ok::<_, Infallible>(e), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
