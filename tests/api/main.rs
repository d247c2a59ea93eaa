//! The API tests: each starts wxlogin on port 0 with its own database and talks HTTP to it,
//! with the built-in sandbox playing WeChat.

mod admin;
mod binding;
mod callback;
mod clients;
mod connections;
mod forward;
mod hardening;
mod helpers;
mod login;
mod oidc;
mod ops;
mod pages;
mod phone;
mod protocol;
mod races;
mod sandbox;
mod sms;
