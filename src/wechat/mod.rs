//! The WeChat Official Account protocol on its own: callback signatures, safe-mode crypto,
//! event XML and passive replies, the HTTP API client with its shared access-token cache, and
//! web authorization (网页授权) inside WeChat's browser.
//!
//! Nothing here knows about axum or sqlx, so this module can be read, fuzzed and reused alone.

pub mod client;
pub mod crypto;
pub mod message;
pub mod oauth;
pub mod signature;
