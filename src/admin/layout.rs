//! The frame of every admin page: the menu, the page, the note about times.

use leptos::prelude::*;

use crate::ui::{Lang, Shell};

/// Which section of the admin area a page belongs to (highlighted in the menu).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Dashboard,
    Users,
    Clients,
}

/// An admin page: the menu, then its content, in the wide layout.
#[component]
pub(super) fn AdminShell(
    /// The page's title.
    #[prop(into)]
    title: String,
    /// The menu entry to highlight.
    section: Section,
    /// Load `/app.js` (the dashboard's live list).
    #[prop(optional)]
    script: bool,
    children: Children,
) -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let current = move |s: Section| if s == section { "page" } else { "false" };
    view! {
        <Shell title script>
            <div class="admin">
                <nav class="admin-nav" aria-label=t.admin_title>
                    <strong>{t.admin_title}</strong>
                    <a href="/admin" aria-current=current(Section::Dashboard)>{t.admin_nav_dashboard}</a>
                    <a href="/admin/users" aria-current=current(Section::Users)>{t.admin_nav_users}</a>
                    <a href="/admin/clients" aria-current=current(Section::Clients)>{t.admin_nav_clients}</a>
                    <a href="/">{t.admin_nav_home}</a>
                </nav>
                {children()}
                <p class="muted">{t.admin_times_note}</p>
            </div>
        </Shell>
    }
}
