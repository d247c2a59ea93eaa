//! Live updates: what wakes the event streams of waiting browsers and admin dashboards after a
//! commit, the server-sent-events plumbing they share, and the signal that ends them all at
//! shutdown.
//!
//! The database stays the source of truth everywhere: a notice only says "look again", so a
//! missed one, a lagging stream or a reconnect loses nothing. Features call [`Live::announce`]
//! once a change is committed; this module knows nothing of scenes or users.

pub mod feed;
pub mod hub;
pub mod sse;

use tokio::sync::{broadcast, watch};

use crate::store::Remote;

/// The live side of the application. Cloning shares it.
#[derive(Clone, Default)]
pub struct Live {
    browsers: hub::Hub,
    logins: feed::LoginFeed,
}

impl Live {
    /// After a commit that moved the scene of browser `owner` on and recorded a login event:
    /// wakes that browser's streams and the dashboards.
    pub fn announce(&self, owner: &str) {
        self.browsers.notify(owner);
        // A browser is woken exactly when a login event was recorded: tell the dashboards.
        self.logins.publish();
    }

    /// After a commit that changed the scene of browser `owner` without recording a login event
    /// (an expiry set by hand, say): wakes that browser's streams only.
    pub fn wake(&self, owner: &str) {
        self.browsers.notify(owner);
    }

    /// Passes on what another instance committed (heard through the database): the same
    /// wake-ups as [`Live::announce`] and [`Live::wake`] would give, and after notices may have
    /// been missed, a look again for every waiting browser and dashboard.
    pub fn heard(&self, remote: Remote) {
        match remote {
            Remote::Changed { owner, login: true } => self.announce(&owner),
            Remote::Changed {
                owner,
                login: false,
            } => self.wake(&owner),
            Remote::Resync => {
                self.browsers.notify_all();
                self.logins.publish();
            }
        }
    }

    /// Wakes this instance's streams for every change other instances commit, as long as
    /// the server runs (spawned at start when the store is shared).
    pub async fn relay(self, mut remote: broadcast::Receiver<Remote>) {
        loop {
            match remote.recv().await {
                Ok(change) => self.heard(change),
                // Fell behind: some changes went unheard, so everyone looks again.
                Err(broadcast::error::RecvError::Lagged(_)) => self.heard(Remote::Resync),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// The changes of one browser's scenes, and the shutdown signal.
    pub fn watch_browser(&self, owner: &str) -> hub::Subscription {
        self.browsers.subscribe(owner)
    }

    /// Notices of recorded login events, from now on.
    pub fn watch_logins(&self) -> broadcast::Receiver<()> {
        self.logins.subscribe()
    }

    /// Becomes `true` when the server starts shutting down.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.browsers.stopping()
    }

    /// Ends every stream; browsers reconnect to whichever server comes next.
    pub fn shut_down(&self) {
        self.browsers.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn announce_wakes_the_browser_and_the_dashboards_and_shutdown_reaches_all() {
        let live = Live::default();
        let mut browser = live.watch_browser("a");
        let mut other = live.watch_browser("b");
        let mut logins = live.watch_logins();
        let mut stopping = live.stopping();

        live.announce("a");

        assert!(browser.changes.has_changed().unwrap());
        assert!(!other.changes.has_changed().unwrap());
        assert!(logins.try_recv().is_ok());
        assert!(!*stopping.borrow_and_update());
        live.shut_down();
        assert!(*stopping.borrow_and_update());
        assert!(*browser.shutdown.borrow_and_update());
        other.changes.mark_unchanged();
    }

    #[tokio::test]
    async fn what_another_instance_committed_wakes_the_same_streams_and_a_resync_wakes_all() {
        let live = Live::default();
        let mut a = live.watch_browser("a");
        let b = live.watch_browser("b");
        let mut logins = live.watch_logins();

        live.heard(Remote::Changed {
            owner: "a".into(),
            login: false,
        });
        assert!(a.changes.has_changed().unwrap());
        assert!(!b.changes.has_changed().unwrap());
        assert!(logins.try_recv().is_err(), "no login event was recorded");
        a.changes.mark_unchanged();

        live.heard(Remote::Resync);
        assert!(a.changes.has_changed().unwrap());
        assert!(b.changes.has_changed().unwrap());
        assert!(logins.try_recv().is_ok());
    }
}
