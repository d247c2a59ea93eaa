//! The `wxlogin` command: `wxlogin` (or `wxlogin serve`) runs the server; `wxlogin admin
//! grant|revoke|list` manages administrators; `wxlogin backup FILE` copies the live database.

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
    /// Manage administrators: grant, revoke, list (works while the server runs).
    Admin {
        #[command(subcommand)]
        command: wxlogin::admin::cli::AdminCommand,
    },
    /// Register the sites that log in through wxlogin (OpenID Connect clients).
    Client {
        #[command(subcommand)]
        command: wxlogin::provider::cli::ClientCommand,
    },
    /// Manage the keys that sign id_tokens.
    Keys {
        #[command(subcommand)]
        command: wxlogin::provider::cli::KeysCommand,
    },
    /// Write a consistent copy of the live database to FILE (safe while the server runs).
    Backup {
        /// Where to write the copy; must not exist yet.
        file: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Kept to the end of main: dropping it writes out the lines still queued.
    let _log_writer = init_tracing();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("wxlogin: configuration error: {e}");
            std::process::exit(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Admin { command } => {
            let out = &mut std::io::stdout();
            finish(
                "admin",
                wxlogin::admin::cli::run(&settings.database_url, command, out).await,
            )
        }
        Command::Client { command } => {
            let out = &mut std::io::stdout();
            let done = wxlogin::provider::cli::run_client(&settings.database_url, command, out);
            finish("client", done.await)
        }
        Command::Keys { command } => {
            let out = &mut std::io::stdout();
            let done = wxlogin::provider::cli::run_keys(&settings.database_url, command, out);
            finish("keys", done.await)
        }
        Command::Backup { file } => {
            let store = wxlogin::store::Store::open(&settings.database_url).await?;
            match store.ops.backup(&file).await {
                Ok(bytes) => {
                    println!("wrote {} ({bytes} bytes)", file.display());
                    Ok(())
                }
                Err(e) => {
                    eprintln!("wxlogin backup: {e:#}");
                    std::process::exit(1);
                }
            }
        }
    }
}

/// The end of a command-line subcommand: its error on stderr and exit status 1.
fn finish(name: &str, result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = result {
        eprintln!("wxlogin {name}: {e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    raise_fd_limit();
    let mode = settings.mode;
    if mode == Mode::Wechat && settings.sms_provider == wxlogin::config::SmsProvider::Console {
        tracing::warn!(
            "WXLOGIN_SMS_PROVIDER=console in wechat mode (WXLOGIN_ALLOW_CONSOLE_SMS=1): codes are \
             printed on stdout and no SMS is delivered; not for real users"
        );
    }
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
    // One write, so the log thread's lines can't land inside it when both go to one file.
    let open = format!("wxlogin: open {}login\n", state.public_url);
    let _ = std::io::Write::write_all(&mut std::io::stderr(), open.as_bytes());
    app.run_until_stopped(shutdown_signal()).await?;
    tracing::info!("wxlogin stopped");
    Ok(())
}

/// Raises the soft open-file limit to the hard one: every waiting browser holds a socket, and
/// the common default soft limit of 1,024 would refuse connections long before memory or CPU
/// run out.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Logs go to stdout from a thread of their own: a request only queues its line. Written from
/// the request's thread, a log file on a busy disk stalled whole tokio workers for tens of
/// milliseconds (wxlogin-bench, callbacks at 5,000/s: p99 28 ms, 16 ms with logging off). If
/// 128,000 lines are ever queued, further lines are dropped rather than wait.
fn init_tracing() -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn,tower_http=info"));
    let json = std::env::var("WXLOGIN_LOG_FORMAT").is_ok_and(|v| v == "json");
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().with_writer(writer))
            .init();
    } else {
        registry.with(fmt::layer().with_writer(writer)).init();
    }
    guard
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
