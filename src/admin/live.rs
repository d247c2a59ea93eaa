//! The dashboard's live list of scans: `GET /admin/events` (server-sent events).
//!
//! [`LoginFeed`] is a broadcast that says "a login event was recorded", sent after the
//! transaction that wrote the row commits. The database stays the source of truth:
//! a stream only uses the broadcast to wake up and then reads every `login_events` row after the
//! last one it sent. So a lagging receiver, a missed publish or a reconnect (`Last-Event-ID`)
//! loses nothing, and a stream also wakes on its own every few seconds to catch rows written by
//! another process on the same database.

use std::time::Duration;

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{Response, sse::Event},
};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::{
    admin::{dashboard, guard::AdminUser, parse_query},
    error::AppResult,
    login::hub,
    sse::{self, Outbox},
    state::AppState,
    ui::{self, Lang},
};

/// How many recorded-login notices a slow stream may fall behind before it skips to reading the
/// database (which it does anyway).
const CAPACITY: usize = 256;
/// A stream looks at the database at least this often, even without a notice.
const POLL: Duration = Duration::from_secs(3);
/// Rows sent per database read.
const BATCH: i64 = 50;
// The hub key whose subscription only serves to learn about shutdown; browser keys are 32 hex
// characters, so this can't be one.
const SHUTDOWN_KEY: &str = "admin:live";

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

/// `?after=` of the event stream.
#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// The newest `login_events` id the page already shows.
    after: Option<i64>,
}

/// `GET /admin/events`: `event: login` with `id:` the row id and `data:` the list item's HTML,
/// for every login event after `Last-Event-ID` (a reconnect), else after `?after=` (the id the
/// page was drawn with), else from now on.
pub async fn events(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    lang: Lang,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> AppResult<Response> {
    let query: EventsQuery = parse_query(lang, raw.as_deref())?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    // Subscribe before reading the newest id, so nothing falls between the two.
    let feed = state.login_feed.subscribe();
    let last_id = match resume.or(query.after) {
        Some(id) => id,
        None => sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(id) FROM login_events")
            .fetch_one(&state.db)
            .await?
            .unwrap_or(0),
    };
    let stream = LiveLogins {
        shutdown: state.hub.subscribe(SHUTDOWN_KEY),
        state,
        admin_id: admin.id,
        lang,
        last_id,
        feed,
        outbox: Outbox::default(),
    };
    Ok(sse::respond(stream))
}

/// Why a waiting stream woke up.
enum Wake {
    Read,
    Poll,
    Shutdown,
}

/// One dashboard's stream.
struct LiveLogins {
    state: AppState,
    admin_id: i64,
    lang: Lang,
    /// The newest row id sent (or already on the page).
    last_id: i64,
    feed: broadcast::Receiver<()>,
    shutdown: hub::Subscription,
    outbox: Outbox,
}

impl sse::Source for LiveLogins {
    const NAME: &'static str = "admin";

    fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// Queues the rows not sent yet, or waits for news.
    async fn step(&mut self) -> AppResult<()> {
        // Whoever lost the admin right (or was disabled, or unbound) meanwhile stops seeing
        // logins at once, not at their next page load.
        let still_admin: Option<bool> = sqlx::query_scalar(
            "SELECT is_admin = 1 AND disabled = 0 AND openid IS NOT NULL FROM users WHERE id = ?",
        )
        .bind(self.admin_id)
        .fetch_optional(&self.state.db)
        .await?;
        if still_admin != Some(true) {
            self.outbox.end();
            return Ok(());
        }
        let rows = dashboard::logins_after(&self.state.db, self.last_id, BATCH).await?;
        if !rows.is_empty() {
            for row in rows {
                self.last_id = row.id;
                let html = ui::fragment(dashboard::login_item(&row, self.lang));
                self.outbox.push_event(
                    Event::default()
                        .event("login")
                        .id(row.id.to_string())
                        .data(html),
                );
            }
            return Ok(());
        }
        let shutdown = &mut self.shutdown.shutdown;
        let woke = tokio::select! {
            notice = self.feed.recv() => match notice {
                // Only at shutdown; polling carries on meanwhile.
                Err(broadcast::error::RecvError::Closed) => Wake::Poll,
                // `Lagged` and `Ok` alike: read the database.
                _ => Wake::Read,
            },
            _ = tokio::time::sleep(POLL) => Wake::Read,
            _ = shutdown.wait_for(|down| *down) => Wake::Shutdown,
        };
        match woke {
            Wake::Read => {}
            Wake::Poll => tokio::time::sleep(POLL).await,
            Wake::Shutdown => self.outbox.restart(),
        }
        Ok(())
    }
}
