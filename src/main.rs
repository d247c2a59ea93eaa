//! The `wxlogin` command: `wxlogin` (or `wxlogin serve`) runs the server.

use clap::{Parser, Subcommand};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};
use wxlogin::{
    Application,
    config::{Mode, Settings},
};

/// Scan-with-WeChat login for websites.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server (the default).
    Serve,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("wxlogin: configuration error: {e}");
            std::process::exit(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let mode = settings.mode;
    let app = Application::build(settings).await?;
    let state = app.state();
    tracing::info!(
        port = app.port(),
        public_url = %state.public_url,
        mode = ?mode,
        "wxlogin is listening"
    );
    if mode == Mode::Sandbox {
        tracing::warn!(
            "sandbox mode: the built-in WeChat stand-in lets anyone log in as anyone; not for production"
        );
    }
    eprintln!("wxlogin: open {}login", state.public_url);
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("wxlogin stopped");
    Ok(())
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn,tower_http=info"));
    let json = std::env::var("WXLOGIN_LOG_FORMAT").is_ok_and(|v| v == "json");
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt::layer().json()).init();
    } else {
        registry.with(fmt::layer()).init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
