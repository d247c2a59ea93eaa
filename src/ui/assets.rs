//! The site's static files, built into the binary: the stylesheet, the one script and the
//! favicon. Pages link them with a version in the URL (a hash of the content), so browsers
//! may keep them for a year and still never run an old script against a new page.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One built-in file.
pub struct Asset {
    /// Its path, without the version.
    pub path: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static str,
    version: LazyLock<String>,
}

impl Asset {
    /// The URL pages link: the path with `?v=` and the first 12 hex digits of the content's
    /// SHA-256.
    pub fn url(&self) -> String {
        format!("{}?v={}", self.path, *self.version)
    }

    /// Whether `query` names this content's version (then it may be cached for good).
    pub fn is_current(&self, query: Option<&str>) -> bool {
        query.and_then(|q| q.strip_prefix("v=")) == Some(self.version.as_str())
    }
}

/// The version of some content: the first 12 hex digits of its SHA-256.
pub fn version_of(body: &[u8]) -> String {
    hex::encode(&Sha256::digest(body)[..6])
}

macro_rules! built_in {
    ($name:ident, $path:literal, $type:literal, $file:literal) => {
        /// Built in from the repository.
        pub static $name: Asset = Asset {
            path: $path,
            content_type: $type,
            body: include_str!($file),
            version: LazyLock::new(|| version_of(include_str!($file).as_bytes())),
        };
    };
}

built_in!(
    STYLE,
    "/style.css",
    "text/css; charset=utf-8",
    "../../style/main.css"
);
built_in!(
    SCRIPT,
    "/app.js",
    "text/javascript; charset=utf-8",
    "../../public/app.js"
);
built_in!(
    FAVICON,
    "/favicon.svg",
    "image/svg+xml",
    "../../public/favicon.svg"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_a_version_of_the_content() {
        let url = STYLE.url();
        let version = url.strip_prefix("/style.css?v=").unwrap();
        assert_eq!(version.len(), 12);
        assert!(STYLE.is_current(Some(&format!("v={version}"))));
        assert!(!STYLE.is_current(Some("v=000000000000")) && !STYLE.is_current(None));
        assert_ne!(SCRIPT.url(), STYLE.url());
    }
}
