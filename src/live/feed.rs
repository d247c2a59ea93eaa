//! [`LoginFeed`]: a broadcast that says "a login event was recorded", sent after the
//! transaction that wrote the row commits. Streams use it only to wake up and then read the
//! database, so a lagging receiver or a missed notice loses nothing.

use tokio::sync::broadcast;

/// How many recorded-login notices a slow stream may fall behind before it skips to reading the
/// database (which it does anyway).
const CAPACITY: usize = 256;

/// Announces recorded login events to the dashboards' streams. Cloning shares the channel.
#[derive(Clone)]
pub struct LoginFeed {
    sender: broadcast::Sender<()>,
}

impl Default for LoginFeed {
    fn default() -> Self {
        LoginFeed {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl LoginFeed {
    /// Tells the streams that a `login_events` row was committed. Call it after the commit: a
    /// stream woken earlier would not see the row yet. A woken stream sends every row after the
    /// last one it sent.
    pub fn publish(&self) {
        // No receivers (no dashboard open) is fine.
        let _ = self.sender.send(());
    }

    /// A receiver of the notices published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.sender.subscribe()
    }
}
