//! The live hub: wakes the event streams of the browsers whose scenes just changed.
//!
//! The database stays the source of truth; the hub only says "look again", keyed by browser.
//! That keeps it tiny (one `watch` channel per waiting browser), and a stream that reconnects,
//! also after a restart, simply reads the current state.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

/// Wakes waiting browsers. Cloning shares the same hub.
#[derive(Clone, Default)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    browsers: Mutex<HashMap<String, watch::Sender<u64>>>,
    shutdown: watch::Sender<bool>,
}

/// One stream's subscription; dropping it forgets the browser when it was the last watcher.
pub struct Subscription {
    hub: Hub,
    owner: String,
    /// Changes when the browser's scenes changed.
    pub changes: watch::Receiver<u64>,
    /// Becomes `true` when the server is shutting down.
    pub shutdown: watch::Receiver<bool>,
}

impl Hub {
    /// Subscribes to changes of one browser's scenes.
    pub fn subscribe(&self, owner: &str) -> Subscription {
        let mut browsers = self.inner.browsers.lock().expect("hub lock");
        let changes = browsers
            .entry(owner.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            hub: self.clone(),
            owner: owner.to_owned(),
            changes,
            shutdown: self.inner.shutdown.subscribe(),
        }
    }

    /// Tells the browser's streams to look again.
    pub fn notify(&self, owner: &str) {
        let browsers = self.inner.browsers.lock().expect("hub lock");
        if let Some(sender) = browsers.get(owner) {
            sender.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Tells every watched browser's streams to look again (notices may have been missed).
    pub fn notify_all(&self) {
        let browsers = self.inner.browsers.lock().expect("hub lock");
        for sender in browsers.values() {
            sender.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// How many browsers are being watched.
    pub fn watched(&self) -> usize {
        self.inner.browsers.lock().expect("hub lock").len()
    }

    /// Becomes `true` when the server is shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Ends every stream (their browsers reconnect to whichever server comes next).
    pub fn shut_down(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut browsers = self.hub.inner.browsers.lock().expect("hub lock");
        if let Some(sender) = browsers.get(&self.owner) {
            // Our receiver is still alive here, so "1" means we were the last.
            if sender.receiver_count() <= 1 {
                browsers.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_wakes_only_that_browser_and_drop_cleans_up() {
        let hub = Hub::default();
        let mut a = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.notify("a");
        assert!(a.changes.has_changed().unwrap());
        assert!(!b.changes.has_changed().unwrap());
        a.changes.mark_unchanged();
        b.changes.mark_unchanged();
        assert_eq!(hub.watched(), 2);
        drop(a);
        drop(b);
        assert_eq!(hub.watched(), 0);
    }
}
