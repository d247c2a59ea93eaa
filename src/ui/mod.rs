//! The page shell and the small pieces every page shares, rendered to HTML on the server by
//! Leptos. No WebAssembly: the live parts are the one ES module `public/app.js`.

pub mod i18n;
pub mod qr;

use axum::response::Html;
use leptos::prelude::*;

pub use i18n::{Lang, Text, fill};

/// Options of a full page.
#[derive(Default)]
pub struct PageOptions {
    /// Refresh the page every N seconds when JavaScript is off (`<noscript><meta refresh>`).
    pub noscript_refresh: Option<u32>,
    /// Load `/app.js` (the SSE client, countdowns).
    pub script: bool,
}

/// Renders a complete HTML document around `body`.
pub fn page(
    lang: Lang,
    title: &str,
    options: PageOptions,
    body: impl IntoView + 'static,
) -> Html<String> {
    let t = lang.text();
    let full_title = if title == t.site_name {
        title.to_owned()
    } else {
        format!("{title} · {}", t.site_name)
    };
    let refresh = options.noscript_refresh.map(|s| {
        view! { <noscript><meta http-equiv="refresh" content=s.to_string() /></noscript> }
    });
    let script = options
        .script
        .then(|| view! { <script type="module" src="/app.js"></script> });
    let html = view! {
        <html lang=lang.html_lang()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="referrer" content="same-origin" />
                <title>{full_title}</title>
                <link rel="stylesheet" href="/style.css" />
                {refresh}
                {script}
            </head>
            <body>
                <main class="card">{body}</main>
            </body>
        </html>
    }
    .to_html();
    Html(format!("<!DOCTYPE html>{html}"))
}

/// Renders a fragment (used for the HTML pushed over server-sent events).
pub fn fragment(view: impl IntoView + 'static) -> String {
    view.to_html()
}

/// A hidden CSRF field for a form.
pub fn csrf_field(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token /> }
}

/// Shows a phone number with its middle hidden: `138****5678`.
pub fn mask_phone(e164: &str) -> String {
    let national = e164.strip_prefix("+86").unwrap_or(e164);
    let chars: Vec<char> = national.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_the_middle_of_a_phone_number() {
        assert_eq!(mask_phone("+8613812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "***");
    }

    #[test]
    fn page_is_a_complete_document_in_the_right_language() {
        let Html(html) = page(
            Lang::En,
            "Test",
            PageOptions::default(),
            view! { <p>"hi <b>"</p> },
        );
        assert!(html.starts_with("<!DOCTYPE html><html lang=\"en\">"));
        assert!(html.contains("hi &lt;b&gt;"), "text is escaped: {html}");
        assert!(!html.contains("app.js"));
    }
}
