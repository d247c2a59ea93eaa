//! `wxlogin client add|list|remove|rotate-secret` and `wxlogin keys rotate`: registering the
//! sites that log in through wxlogin, and its signing keys, from the command line. `add` and
//! `rotate-secret` print one JSON object, `{"client_id", "client_secret"}`, the only time the
//! secret is ever shown (only its hash is stored).

use std::io::Write;

use clap::Subcommand;

use crate::{
    oidc::{self, Client, RedirectUri},
    store::{Store, StoreError},
    util::now,
};

/// `wxlogin client <command>`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClientCommand {
    /// Register a site; prints its client_id and (unless public) its client_secret as JSON.
    Add {
        /// Shown to people on the login page ("you are logging in to ...").
        #[arg(long)]
        name: String,
        /// Where codes may be sent (https, or http on loopback); repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where the person may be sent after logging out; repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A single-page or native app: no secret, PKCE required.
        #[arg(long)]
        public: bool,
    },
    /// List the registered sites.
    List,
    /// Remove a site, its codes and its tokens.
    Remove {
        /// Its client_id.
        id: String,
    },
    /// Give a site a new secret (the old one stops working); prints it as JSON.
    RotateSecret {
        /// Its client_id.
        id: String,
    },
}

/// `wxlogin keys <command>`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key; the old one stays in the JWKS until its tokens expire.
    Rotate,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A redirect URI can't be registered.
    #[error("{0}")]
    BadUri(String),
    /// The name is empty or too long.
    #[error("the name must be 1 to 100 characters")]
    BadName,
    /// No such client.
    #[error("no client has the id {0}")]
    UnknownClient(String),
    /// A public client has no secret to rotate.
    #[error("client {0} is public: it has no secret")]
    PublicClient(String),
    #[error(transparent)]
    Database(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Opens the database and runs a client command.
pub async fn run_client(
    database_url: &str,
    command: ClientCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::open(database_url).await?;
    Ok(client_command(&store, command, out).await?)
}

/// Opens the database and runs a keys command.
pub async fn run_keys(
    database_url: &str,
    command: KeysCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::open(database_url).await?;
    Ok(keys_command(&store, command, out).await?)
}

/// Runs a client command on `store`.
pub async fn client_command(
    store: &Store,
    command: ClientCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
        } => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > 100 {
                return Err(CliError::BadName);
            }
            let parse = |uris: Vec<String>| -> Result<Vec<String>, CliError> {
                uris.iter()
                    .map(|u| {
                        RedirectUri::parse(u)
                            .map(RedirectUri::into_string)
                            .map_err(CliError::BadUri)
                    })
                    .collect()
            };
            let secret = (!public).then(oidc::random_token);
            let client = Client {
                id: oidc::random_token()[..22].to_owned(),
                name,
                secret_hash: secret.as_deref().map(oidc::token_hash),
                redirect_uris: parse(redirect_uris)?,
                post_logout_redirect_uris: parse(post_logout_redirect_uris)?,
                created_at: now(),
            };
            store.oidc.add_client(&client, None).await?;
            print_credentials(out, &client.id, secret.as_deref())
        }
        ClientCommand::List => {
            for c in store.oidc.clients().await? {
                let kind = if c.is_public() {
                    "public"
                } else {
                    "confidential"
                };
                writeln!(
                    out,
                    "{}\t{}\t{kind}\t{}",
                    c.id,
                    c.name,
                    c.redirect_uris.join(" ")
                )?;
            }
            Ok(())
        }
        ClientCommand::Remove { id } => {
            if !store.oidc.remove_client(&id, None).await? {
                return Err(CliError::UnknownClient(id));
            }
            writeln!(out, "removed {id}")?;
            Ok(())
        }
        ClientCommand::RotateSecret { id } => {
            let client = store
                .oidc
                .client(&id)
                .await?
                .ok_or_else(|| CliError::UnknownClient(id.clone()))?;
            if client.is_public() {
                return Err(CliError::PublicClient(id));
            }
            let secret = oidc::random_token();
            store
                .oidc
                .set_client_secret(&id, oidc::token_hash(&secret), None)
                .await?;
            print_credentials(out, &id, Some(&secret))
        }
    }
}

fn print_credentials(
    out: &mut impl Write,
    client_id: &str,
    secret: Option<&str>,
) -> Result<(), CliError> {
    let json = match secret {
        Some(secret) => serde_json::json!({ "client_id": client_id, "client_secret": secret }),
        None => serde_json::json!({ "client_id": client_id }),
    };
    writeln!(out, "{json}")?;
    Ok(())
}

/// Runs a keys command on `store`.
pub async fn keys_command(
    store: &Store,
    command: KeysCommand,
    out: &mut impl Write,
) -> Result<(), CliError> {
    match command {
        KeysCommand::Rotate => {
            let key = tokio::task::spawn_blocking(|| oidc::SigningKey::generate(now()))
                .await
                .map_err(|e| CliError::Other(e.into()))??;
            store.oidc.add_signing_key(&key, false).await?;
            // Running servers read the keys again within a minute.
            writeln!(out, "new signing key {}", key.kid)?;
            Ok(())
        }
    }
}
