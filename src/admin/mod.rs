//! The admin area: a dashboard with a live list of scans, the users table (search, filters,
//! keyset pagination, CSV export), one user's detail with login history and audit log, and the
//! actions on a user (disable, enable, unbind WeChat, grant or revoke admin), plus the command
//! line that makes the first administrator.
//!
//! Administrators are ordinary users with `users.is_admin`; they log in by scanning. Every page
//! is drawn on the server and driven by its URL's query, so a view can be bookmarked and all of
//! it works without JavaScript (which only adds the live list).

pub mod audit;
pub mod cli;
mod clients;
pub mod dashboard;
pub mod detail;
mod export;
pub mod guard;
mod layout;
pub mod live;
mod query;
mod times;
pub mod users;

use axum::{
    Router, middleware,
    routing::{get, post},
};
use leptos::prelude::*;
use leptos_router::{
    components::{Route, Router as PageRouter, Routes},
    path,
};

use crate::{
    pages::{self, serve},
    state::AppState,
};

/// The live feed of the dashboard, apart from [`router`] (served without compression, as it
/// stays open), behind the same guard.
pub fn streams(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/events", get(live::events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_admin,
        ))
}

/// Routes of this feature, all behind [`guard::require_admin`] (and each handler and page
/// takes a [`guard::AdminUser`] as well). The guard needs the state to reach the database.
pub fn router(state: &AppState) -> Router<AppState> {
    serve(Router::new(), AdminPages)
        .route("/admin/users.csv", get(export::export))
        .route("/admin/users/{id}/{action}", post(detail::act))
        .route("/admin/clients/{id}", post(clients::edit))
        .route("/admin/clients/{id}/remove", post(clients::remove))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_admin,
        ))
}

/// The pages of the admin area.
#[component]
fn AdminPages() -> impl IntoView {
    view! {
        <PageRouter>
            <Routes fallback=pages::not_found>
                <Route path=path!("/admin") view=dashboard::DashboardPage />
                <Route path=path!("/admin/users") view=users::UsersPage />
                <Route path=path!("/admin/users/:id") view=detail::UserPage />
                <Route path=path!("/admin/clients") view=clients::ClientsPage />
                <Route path=path!("/admin/clients/:id") view=clients::ClientPage />
            </Routes>
        </PageRouter>
    }
}
