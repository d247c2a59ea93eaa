//! The WeChat Official Account protocol on its own: callback signatures, safe-mode crypto,
//! event XML and passive replies, and the HTTP API client with its shared access-token cache.
//!
//! Nothing here knows about axum or sqlx, so this module can be read, fuzzed and reused alone.

pub mod client;
pub mod crypto;
pub mod message;
pub mod signature;
