//! `wxlogin admin grant|revoke|list`: manage administrators from the command line, on the
//! configured database. SQLite runs in WAL mode, so this works while the server runs; the
//! change counts from the person's next request.
//!
//! The first administrator can only be made here: in the web area only an administrator can
//! make another.

use std::io::Write;

use clap::Subcommand;

use crate::{
    admin::audit::Action,
    phone::Phone,
    store::{Store, StoreError},
};

/// `wxlogin admin <command>`.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Make the user with this phone number an administrator.
    Grant {
        /// Their bound phone number, e.g. 13812345678 or +86 138 1234 5678.
        phone: String,
    },
    /// Make the administrator with this phone number an ordinary user again.
    Revoke {
        /// Their bound phone number.
        phone: String,
    },
    /// List the administrators.
    List,
}

/// Why a command failed (the message is for the operator; the exit status is non-zero).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The argument is not a phone number.
    #[error("`{0}` is not a mainland China mobile number (e.g. 13812345678)")]
    BadPhone(String),
    /// Nobody has bound this phone.
    #[error("no user has the phone number {0}; they must log in by scanning and bind it first")]
    UnknownPhone(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] StoreError),
    /// Writing the answer failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Opens (and migrates) the database at `database_url` and runs `command`, writing what
/// happened to `out`.
pub async fn run(
    database_url: &str,
    command: AdminCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::open(database_url).await?;
    Ok(execute(&store, command, out).await?)
}

/// Runs `command` on `store`.
pub async fn execute(
    db: &Store,
    command: AdminCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        AdminCommand::Grant { phone } => set_admin(db, &phone, Action::GrantAdmin, out).await,
        AdminCommand::Revoke { phone } => set_admin(db, &phone, Action::RevokeAdmin, out).await,
        AdminCommand::List => list(db, out).await,
    }
}

async fn set_admin(
    store: &Store,
    raw_phone: &str,
    action: Action,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let phone = Phone::parse(raw_phone).ok_or_else(|| CliError::BadPhone(raw_phone.to_owned()))?;
    let unknown = || CliError::UnknownPhone(phone.e164().to_owned());
    let (id, _) = store
        .admin
        .user_by_phone(phone.e164())
        .await?
        .ok_or_else(unknown)?;
    // The change and its audit row are one transaction, which also sees whether the user
    // is still there.
    let done = store
        .admin
        .act(None, id, action, Some("command line"))
        .await?
        .ok_or_else(unknown)?;
    let (changed, disabled) = (done.changed, done.disabled);
    let who = format!("{} (user {id})", phone.e164());
    match (action, changed) {
        (Action::GrantAdmin, true) => writeln!(out, "{who} is now an administrator")?,
        (Action::GrantAdmin, false) => writeln!(out, "{who} is already an administrator")?,
        (_, true) => writeln!(out, "{who} is no longer an administrator")?,
        (_, false) => writeln!(out, "{who} was not an administrator")?,
    }
    if disabled && action == Action::GrantAdmin {
        writeln!(
            out,
            "note: this account is disabled; it can't log in until an administrator enables it"
        )?;
    }
    Ok(())
}

async fn list(store: &Store, out: &mut impl Write) -> Result<(), CliError> {
    let admins = store.admin.admins().await?;
    if admins.is_empty() {
        writeln!(
            out,
            "no administrators yet; make one with: wxlogin admin grant <phone>"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>8}  {:<15}  {:<8}  last login (UTC+8)",
        "id", "phone", "state"
    )?;
    for admin in admins {
        let (id, phone, disabled, last_login) =
            (admin.id, admin.phone, admin.disabled, admin.last_login_at);
        let openid = admin.openid;
        let state = match (disabled, openid.is_some()) {
            (true, _) => "disabled",
            (false, false) => "unbound",
            (false, true) => "active",
        };
        let last = last_login
            .map(super::times::format_timestamp)
            .unwrap_or_else(|| "never".into());
        writeln!(out, "{id:>8}  {phone:<15}  {state:<8}  {last}")?;
    }
    Ok(())
}
