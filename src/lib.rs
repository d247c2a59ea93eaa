//! wxlogin: "scan with WeChat to log in" for websites, through a WeChat Official Account.
//!
//! [`Application::build`] (in [`startup`]) turns [`config::Settings`] into a bound, migrated,
//! ready server; `main` and the integration tests both use it. [`app`] (in [`routes`]) is the
//! router alone, and [`server`] the HTTP/1.1 loop that serves it.

pub mod admin;
pub mod binding;
pub mod client_info;
pub mod config;
pub mod csp;
pub mod error;
pub mod forward;
pub mod home;
pub mod live;
pub mod login;
pub mod maintenance;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod phone;
pub mod provider;
pub mod routes;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod sms;
pub mod startup;
pub mod state;
pub mod store;
pub mod ui;
pub mod users;
pub mod util;
pub mod wechat;

pub use routes::app;
pub use startup::Application;
