//! The page shell and the small pieces every page shares, rendered to HTML on the server by
//! Leptos. No WebAssembly: the live parts are the one ES module `public/app.js`.

pub mod assets;
pub mod brand;
pub mod i18n;
pub mod qr;
pub mod render;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title};

pub use i18n::{Lang, Text, fill};

/// A complete HTML document: head, stylesheet, title (through `leptos_meta`) and the page's
/// content in its card. Every page draws itself inside one.
#[component]
pub fn Shell(
    /// The page's own title; the site's name is added after it.
    #[prop(into)]
    title: String,
    /// Reload every this many seconds when JavaScript is off (`<noscript><meta refresh>`).
    #[prop(optional)]
    noscript_refresh: Option<u32>,
    /// Load `/app.js` (the SSE client, countdowns).
    #[prop(optional)]
    script: bool,
    /// Show the site's logo and name above the page and its privacy and terms links below
    /// (the login and binding pages).
    #[prop(optional)]
    brand: bool,
    children: Children,
) -> impl IntoView {
    let lang = expect_context::<Lang>();
    let t = lang.text();
    let site = brand::current().name(t);
    let full_title = if title == site {
        title
    } else {
        format!("{title} · {site}")
    };
    // Type-erased: the document's type is deep enough already.
    let header = brand.then(|| view! { <brand::BrandHeader /> }.into_any());
    let footer = brand.then(|| view! { <brand::BrandFooter /> }.into_any());
    let refresh = noscript_refresh.map(|s| {
        view! { <noscript><meta http-equiv="refresh" content=s.to_string() /></noscript> }
    });
    let script = script.then(|| view! { <script type="module" src=assets::SCRIPT.url()></script> });
    view! {
        <!DOCTYPE html>
        <html lang=lang.html_lang()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="referrer" content="same-origin" />
                <MetaTags />
                <Title text=full_title />
                <link rel="icon" type="image/svg+xml" href=assets::FAVICON.url() />
                <link rel="stylesheet" href=assets::STYLE.url() />
                {refresh}
                {script}
            </head>
            <body>
                <main class="card">{header}{children()}{footer}</main>
            </body>
        </html>
    }
}

/// A hidden CSRF field for a form.
#[component]
pub fn CsrfField(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token /> }
}

/// `HH:MM` in China Standard Time (UTC+8, no daylight saving), the clock the people this serves
/// read.
pub fn china_clock(unix: i64) -> String {
    let minutes = (unix + 8 * 3600).rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// `HH:MM:SS` in China Standard Time.
pub fn china_clock_seconds(unix: i64) -> String {
    let seconds = (unix + 8 * 3600).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// `2026-12-03 14:03` in China Standard Time.
pub fn china_datetime(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix + 8 * 3600) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
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

    #[tokio::test]
    async fn shell_is_a_complete_document_in_the_right_language() {
        let rendered = render::document(Lang::En, || {
            view! { <Shell title="Test"><p>"hi <b>"</p></Shell> }
        })
        .await;
        let html = rendered.html();
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{html}"
        );
        assert!(
            html.contains("<title>Test · "),
            "leptos_meta puts the title in: {html}"
        );
        assert!(html.contains("hi &lt;b&gt;"), "text is escaped: {html}");
        assert!(!html.contains("app.js"));
        assert!(!html.contains("<script"), "no hydration scripts: {html}");
    }
}
