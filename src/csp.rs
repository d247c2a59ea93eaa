//! The Content-Security-Policy of every page: scripts, styles and everything else from this
//! site only, no framing, forms posting only here.

use axum::http::HeaderValue;

const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The policy of every page.
pub fn policy() -> HeaderValue {
    HeaderValue::from_static(POLICY)
}

/// The policy of a page whose form, once answered, leads on to `origin` (the site a login
/// returns to): browsers check `form-action` against every redirect that follows a
/// submission, not only the first URL. `origin` must be a URL's origin (`https://host:port`).
pub fn with_form_redirect_to(origin: &str) -> HeaderValue {
    let clean = origin
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'-' | b'[' | b']'));
    match HeaderValue::from_str(&format!("{POLICY} {origin}")) {
        Ok(value) if clean => value,
        _ => policy(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_origin_is_added_to_form_action_only_when_clean() {
        let p = with_form_redirect_to("https://shop.example.com");
        assert!(
            p.to_str()
                .unwrap()
                .ends_with("form-action 'self' https://shop.example.com")
        );
        assert_eq!(with_form_redirect_to("https://x; script-src *"), policy());
    }
}
