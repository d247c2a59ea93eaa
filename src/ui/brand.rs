//! Whose pages these are: the site's name, logo and links, as the login and binding pages
//! show them. Set per request (a task-local the router's layer scopes), so every page drawn
//! while answering it sees the same brand without each handler passing it on.

use std::{future::Future, sync::Arc};

use leptos::prelude::*;

use super::{Lang, Text};

/// The site's brand, as configured.
#[derive(Debug, Clone, Default)]
pub struct Brand {
    /// The site's name; `None`: the default of each language.
    pub site_name: Option<String>,
    /// Where its logo is served (with a version), if there is one.
    pub logo_url: Option<String>,
    /// The Official Account's name.
    pub account_name: Option<String>,
    pub privacy_url: Option<String>,
    pub terms_url: Option<String>,
    /// Whom a disabled person should contact.
    pub support_contact: Option<String>,
}

impl Brand {
    /// The site's name in `t`'s language.
    pub fn name(&self, t: &'static Text) -> String {
        self.site_name
            .clone()
            .unwrap_or_else(|| t.site_name.to_owned())
    }
}

tokio::task_local! {
    static CURRENT: Arc<Brand>;
}

/// Runs `answer` with `brand` as the brand of every page it draws.
pub async fn scope<F: Future>(brand: Arc<Brand>, answer: F) -> F::Output {
    CURRENT.scope(brand, answer).await
}

/// The brand of the request being answered (the default outside one: unit tests, tools).
pub fn current() -> Arc<Brand> {
    CURRENT.try_with(Arc::clone).unwrap_or_default()
}

/// The site's logo and name, at the top of the login and binding pages; nothing when neither
/// is configured (the page's own title says the rest).
#[component]
pub fn BrandHeader() -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let brand = current();
    if brand.site_name.is_none() && brand.logo_url.is_none() {
        return None;
    }
    let logo = brand
        .logo_url
        .clone()
        .map(|src| view! { <img class="brand-logo" src=src alt="" width="40" height="40" /> });
    Some(view! {
        <header class="brand">{logo}<span class="brand-name">{brand.name(t)}</span></header>
    })
}

/// The links to the site's privacy policy and terms, when it has them.
#[component]
pub fn BrandFooter() -> impl IntoView {
    let t = expect_context::<Lang>().text();
    let brand = current();
    let privacy = brand
        .privacy_url
        .clone()
        .map(|href| view! { <a id="privacy-link" href=href>{t.privacy_link}</a> });
    let terms = brand
        .terms_url
        .clone()
        .map(|href| view! { <a id="terms-link" href=href>{t.terms_link}</a> });
    (privacy.is_some() || terms.is_some())
        .then(|| view! { <footer class="brand-links">{privacy}{terms}</footer> })
}
