//! The dashboard's live list of scans: `GET /admin/events` (server-sent events).
//!
//! [`crate::live::feed::LoginFeed`] says "a login event was recorded" after its commit. The
//! database stays the source of truth: a stream only uses the notice to wake up and then reads every `login_events` row after the
//! last one it sent. So a lagging receiver, a missed publish or a reconnect (`Last-Event-ID`)
//! loses nothing, and a stream also wakes on its own every few seconds to catch rows written by
//! another process on the same database.

use std::time::Duration;

use axum::{
    extract::{RawQuery, State},
    http::HeaderMap,
    response::{Response, sse::Event},
};
use leptos::prelude::*;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use crate::{
    admin::{dashboard::LoginItem, guard::AdminUser, query::parse_query},
    error::AppResult,
    live::sse::{self, Outbox},
    state::AppState,
    ui::{Lang, render},
};

/// A stream looks at the database at least this often, even without a notice.
const POLL: Duration = Duration::from_secs(3);
/// Rows sent per database read.
const BATCH: i64 = 50;
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
    let feed = state.live.watch_logins();
    let last_id = match resume.or(query.after) {
        Some(id) => id,
        None => state.store.admin.newest_login_id().await?,
    };
    let stream = LiveLogins {
        stopping: state.live.stopping(),
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
    stopping: watch::Receiver<bool>,
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
        let admin = &self.state.store.admin;
        if !admin.still_admin(self.admin_id).await? {
            self.outbox.end();
            return Ok(());
        }
        let rows = admin.logins_after(self.last_id, BATCH).await?;
        if !rows.is_empty() {
            for row in rows {
                self.last_id = row.id;
                let id = row.id.to_string();
                let html = render::fragment(self.lang, move || view! { <LoginItem row /> });
                self.outbox
                    .push_event(Event::default().event("login").id(id).data(html));
            }
            return Ok(());
        }
        let stopping = &mut self.stopping;
        let woke = tokio::select! {
            notice = self.feed.recv() => match notice {
                // Only at shutdown; polling carries on meanwhile.
                Err(broadcast::error::RecvError::Closed) => Wake::Poll,
                // `Lagged` and `Ok` alike: read the database.
                _ => Wake::Read,
            },
            _ = tokio::time::sleep(POLL) => Wake::Read,
            _ = stopping.wait_for(|down| *down) => Wake::Shutdown,
        };
        match woke {
            Wake::Read => {}
            Wake::Poll => tokio::time::sleep(POLL).await,
            Wake::Shutdown => self.outbox.restart(),
        }
        Ok(())
    }
}
