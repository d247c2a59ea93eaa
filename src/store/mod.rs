//! Storage: the only place that knows SQL.
//!
//! Features talk to [`Store`], a set of traits, each at the level of one unit of work (a
//! scene made or redeemed, a callback recorded with its effect, a phone linked, an SMS code
//! counted, an admin action audited), so the atomic steps every limit depends on are the
//! backend's to get right in one place. The records they trade in ([`records`]) are plain
//! data; their rules (a scene's status, the scan decision) live with the features, as plain
//! functions the store is handed where a transaction needs them.
//!
//! [`sqlite`] is the embedded backend: pools, the writer thread, the WAL checkpointer, the
//! busy handler, full-text search. [`postgres`] is the one several instances share: advisory
//! locks where SQLite has its single writer, and `LISTEN`/`NOTIFY` so that a change committed
//! by one instance wakes the browsers waiting on another ([`Store::remote`]). Each has its own
//! migrations (`migrations/sqlite/`, `migrations/postgres/`) and every SQL string of its own.

pub mod postgres;
pub mod records;
pub mod sqlite;

use std::{path::Path, sync::Arc};

pub use records::*;

/// A storage failure. Its cause goes to the log; nobody is shown it.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0:#}")]
pub struct StoreError(#[from] anyhow::Error);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.into())
    }
}

/// What a store call gives.
pub type StoreResult<T> = Result<T, StoreError>;

/// The storage of a running wxlogin: one trait object per unit of work, all on the same
/// backend. Cloning is cheap.
#[derive(Clone)]
pub struct Store {
    /// Login scenes and the per-client QR quota.
    pub scenes: Arc<dyn Scenes>,
    /// WeChat callbacks: the replay store, deliveries and their effect.
    pub callbacks: Arc<dyn Callbacks>,
    /// Phone binding: SMS codes and their limits, linking a WeChat to a phone.
    pub binding: Arc<dyn Binding>,
    /// Users as the session sees them.
    pub users: Arc<dyn Users>,
    /// The admin area: lists, reports, audited actions.
    pub admin: Arc<dyn Admin>,
    /// The sandbox's stand-in state for WeChat's servers and the phone's SMS inbox.
    pub sandbox: Arc<dyn SandboxState>,
    /// Installation keys and WeChat's access token.
    pub keys: Arc<dyn Keys>,
    /// Health, housekeeping, backups.
    pub ops: Arc<dyn Ops>,
    /// The OpenID Connect provider: clients, signing keys, codes, tokens.
    pub oidc: Arc<dyn Oidc>,
    /// WeChat's access token, for the API client.
    pub tokens: Arc<dyn crate::wechat::client::TokenStore>,
    /// Browser sessions, for tower-sessions.
    pub sessions: Sessions,
    /// Changes other instances committed (PostgreSQL only).
    pub remote: RemoteFeed,
}

/// What another instance sharing the database committed, as its notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// The scene of browser `owner` moved on (`login`: and a login event was recorded).
    Changed {
        /// The browser's key.
        owner: String,
        /// Whether a login event was recorded too.
        login: bool,
    },
    /// Notifications may have been missed (the listener reconnected): every waiting browser
    /// should read its state again.
    Resync,
}

/// Where [`Remote`] changes arrive; empty on a backend only one instance uses.
#[derive(Clone, Debug, Default)]
pub struct RemoteFeed(pub(crate) Option<tokio::sync::broadcast::Sender<Remote>>);

impl RemoteFeed {
    /// The changes heard from now on, if other instances may make any.
    pub fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Remote>> {
        self.0.as_ref().map(|sender| sender.subscribe())
    }
}

/// The session store of the backend, as tower-sessions wants it (a clonable store).
#[derive(Clone, Debug)]
pub struct Sessions(Arc<dyn tower_sessions::SessionStore>);

#[async_trait::async_trait]
impl tower_sessions::SessionStore for Sessions {
    async fn create(
        &self,
        record: &mut tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.create(record).await
    }

    async fn save(
        &self,
        record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.save(record).await
    }

    async fn load(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        self.0.load(id).await
    }

    async fn delete(
        &self,
        id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        self.0.delete(id).await
    }
}

impl Store {
    /// Opens (creating and migrating) the database at `url` and starts the backend's own
    /// threads and tasks (writer, checkpointer, listener, expired-session deletion):
    /// `postgres://` (or `postgresql://`) is PostgreSQL, anything else SQLite.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        if is_postgres(url) {
            postgres::open(url).await
        } else {
            sqlite::open(url).await
        }
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Login scenes: one QR code each.
#[async_trait::async_trait]
pub trait Scenes: Send + Sync {
    /// The newest scene of browser `owner`.
    async fn current(&self, owner: &str) -> StoreResult<Option<Scene>>;
    /// Takes one of `cap` new-QR slots per hour of client `key` at `now`, in one step with the
    /// count (codes being made count too): `Ok(slot)`, or `Err(seconds)` until one frees.
    async fn reserve_qr_slot(
        &self,
        key: &str,
        cap: i64,
        now: i64,
    ) -> StoreResult<Result<QrSlot, i64>>;
    /// Stores a new scene, made with `slot` (a slot not spent is given back when dropped).
    async fn insert(&self, scene: &Scene, slot: QrSlot) -> StoreResult<()>;
    /// Gives `slot` back now, its code not made: counted no more once this returns (dropping
    /// it gives it back too, but perhaps a moment later).
    async fn give_back(&self, slot: QrSlot) {
        drop(slot);
    }
    /// Redeems the browser's authorized scene, once: the user to log in, their session epoch,
    /// and how they logged in. A scene is redeemable for `grace` seconds after its scan.
    async fn consume(&self, owner: &str, grace: i64, now: i64) -> StoreResult<Option<Redeemed>>;
    /// Stores the `state` of a web authorization setting out, in one step with the count of
    /// its client's in the last hour (they share the QR codes' `cap`): `Err(seconds)` until
    /// one frees.
    async fn start_oauth(&self, start: &OauthStart, cap: i64) -> StoreResult<Result<(), i64>>;
    /// Takes `state` back, once: true when it was stored for browser `owner` and is alive.
    async fn take_oauth(&self, state: &str, owner: &str, now: i64) -> StoreResult<bool>;
    /// Stores a login that needs no QR code (`scene.openid` known), in the state `decide`
    /// gives for the user with that openid (id, disabled), and records it in the history:
    /// one transaction.
    async fn insert_decided(&self, scene: Scene, decide: DecideRule) -> StoreResult<SceneChange>;
}

/// WeChat callbacks.
#[async_trait::async_trait]
pub trait Callbacks: Send + Sync {
    /// Records the (signature, timestamp, nonce) of a GET URL check, answered with nothing if
    /// it comes again as a POST.
    async fn record_url_check(&self, request: [String; 3], now: i64) -> StoreResult<()>;
    /// Records a delivery and applies its effect in one transaction: replays and retries get
    /// the first answer and no effect; a scan of a waiting scene moves it as `decide` says.
    async fn record(&self, delivery: Delivery, decide: ScanRule) -> StoreResult<Recorded>;
}

/// Phone binding.
#[async_trait::async_trait]
pub trait Binding: Send + Sync {
    /// Stores a new code and checks the send limits in the same transaction (the insert takes
    /// the write lock first, so parallel sends are counted one after the other): the code's
    /// id, or the limit that holds the longest.
    async fn insert_code(
        &self,
        code: NewCode,
        limits: SendLimits,
    ) -> StoreResult<Result<i64, Blocked>>;
    /// Seconds until another code may go to this login or this phone.
    async fn resend_wait(
        &self,
        scene: &str,
        phone: &str,
        resend_seconds: i64,
        now: i64,
    ) -> StoreResult<i64>;
    /// Counts a try at the newest code of this login and phone, if it is still alive, in one
    /// step with the check: what to compare the try against.
    async fn count_try(
        &self,
        scene: &str,
        phone: &str,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<CodeTry>;
    /// Links the scan's WeChat to the user with this phone in one transaction, claiming the
    /// code and authorizing the scene.
    async fn link(&self, link: LinkRequest) -> StoreResult<Linked>;
    /// Logs in the user with this phone by the SMS code `code_id` in one transaction: claims
    /// the code, makes the user when `open` allows a new phone, stores an authorized scene
    /// (`scene`, method `sms`) and records the login.
    async fn phone_login(&self, login: PhoneLogin) -> StoreResult<PhoneLoggedIn>;
    /// Stores what `user/info` said after a binding.
    async fn store_profile(
        &self,
        user_id: i64,
        openid: &str,
        unionid: Option<&str>,
        following: bool,
        now: i64,
    ) -> StoreResult<()>;
}

/// Users, as sessions see them.
#[async_trait::async_trait]
pub trait Users: Send + Sync {
    /// The user with this id.
    async fn by_id(&self, id: i64) -> StoreResult<Option<User>>;
    /// The user with this phone (E.164).
    async fn by_phone(&self, phone: &str) -> StoreResult<Option<User>>;
    /// Records whether `openid` follows the account (as `user/info` says).
    async fn set_following(&self, openid: &str, following: bool, now: i64) -> StoreResult<()>;
    /// Whether `openid` follows the account, as far as we know.
    async fn following(&self, openid: &str) -> StoreResult<Option<bool>>;
    /// Ends every session of the user at its next request.
    async fn log_out_everywhere(&self, id: i64) -> StoreResult<()>;
}

/// The admin area.
#[async_trait::async_trait]
pub trait Admin: Send + Sync {
    /// One page of the users list and the cursor of the next.
    async fn users_page(
        &self,
        query: &ListQuery,
        page_size: usize,
    ) -> StoreResult<(Vec<UserRow>, Option<Cursor>)>;
    /// Every user `query` selects, in order, sent into `rows` in batches as they are read (the
    /// CSV export); stops when the receiver goes away, and ends with the error if one occurs.
    async fn users_export(
        &self,
        query: ListQuery,
        rows: tokio::sync::mpsc::Sender<StoreResult<Vec<UserRow>>>,
    );
    /// The dashboard's totals and per-day counts since `since` (days in UTC+`offset`).
    async fn dashboard(&self, since: i64, offset: i64, latest: i64) -> StoreResult<Dashboard>;
    /// Login events with an id above `after`, oldest first, at most `limit`.
    async fn logins_after(&self, after: i64, limit: i64) -> StoreResult<Vec<LoginRow>>;
    /// The newest login event's id.
    async fn newest_login_id(&self) -> StoreResult<i64>;
    /// Whether this user may still see the admin area (admin, enabled, bound).
    async fn still_admin(&self, id: i64) -> StoreResult<bool>;
    /// A user's login history: their events, and the scans their current WeChat made before
    /// it was bound (no user yet), newest first, before `(at, id)`, at most `limit` rows.
    async fn history(
        &self,
        user_id: i64,
        openid: Option<&str>,
        before: (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<HistoryRow>>;
    /// Whether this WeChat follows the account.
    async fn following(&self, openid: &str) -> StoreResult<bool>;
    /// A user's audit log, newest first.
    async fn audit_log(&self, target: i64, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// Applies `action` to user `target` and audits it in one transaction (`actor`: the
    /// admin, `None` for the command line). `None` when there is no such user; else whether
    /// anything changed (granting an admin twice changes nothing and writes no audit row).
    async fn act(
        &self,
        actor: Option<i64>,
        target: i64,
        action: Action,
        detail: Option<&str>,
    ) -> StoreResult<Option<ActOutcome>>;
    /// The user with this phone (E.164): id and whether disabled.
    async fn user_by_phone(&self, phone: &str) -> StoreResult<Option<(i64, bool)>>;
    /// Every administrator, by id.
    async fn admins(&self) -> StoreResult<Vec<AdminRow>>;
}

/// The sandbox's state.
#[async_trait::async_trait]
pub trait SandboxState: Send + Sync {
    /// Expires every sandbox access token now.
    async fn expire_tokens(&self, now: i64) -> StoreResult<()>;
    /// Cuts every token's life to end by `until` (a new classic token was issued).
    async fn cut_tokens(&self, until: i64) -> StoreResult<()>;
    /// Stores a new token.
    async fn insert_token(&self, token: &str, expires_at: i64) -> StoreResult<()>;
    /// Makes the QR code of `ticket` die now, in WeChat's memory and in the login it belongs
    /// to (tests of what a dead code looks like): the browser key of that login, if any.
    async fn expire_ticket(&self, ticket: &str, now: i64) -> StoreResult<Option<String>>;
    /// Notes that `openid` met the account without following it (a web authorization), unless
    /// it is known already.
    async fn meet(&self, openid: &str, now: i64) -> StoreResult<()>;
    /// Stores a web-authorization code for `openid` (`snapshot`: a snapshot page's user).
    async fn insert_oauth_code(
        &self,
        code: &str,
        openid: &str,
        snapshot: bool,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Uses a web-authorization code, once.
    async fn use_oauth_code(&self, code: &str, now: i64) -> StoreResult<OauthCodeUse>;
    /// The live token that lives longest, with its expiry.
    async fn live_token(&self, now: i64) -> StoreResult<Option<(String, i64)>>;
    /// A token's expiry, if it was ever issued.
    async fn token_expiry(&self, token: &str) -> StoreResult<Option<i64>>;
    /// Stores a new QR ticket for `scene` (through the writer, as every login page makes one).
    async fn insert_ticket(&self, ticket: &str, scene: &str, expires_at: i64) -> StoreResult<()>;
    /// The scene of a live ticket.
    async fn ticket_scene(&self, ticket: &str, now: i64) -> StoreResult<Option<String>>;
    /// Whether this openid follows the sandbox account, and since when.
    async fn follower(&self, openid: &str) -> StoreResult<Option<(bool, i64)>>;
    /// Makes this openid a follower from `now`.
    async fn follow(&self, openid: &str, now: i64) -> StoreResult<()>;
    /// The openids that scanned lately, newest first.
    async fn recent_openids(&self, limit: i64) -> StoreResult<Vec<String>>;
    /// Puts an SMS in the sandbox inbox.
    async fn deliver_sms(&self, phone: &str, code: &str, now: i64) -> StoreResult<()>;
    /// The newest SMS to this phone: code and time.
    async fn newest_sms(&self, phone: &str) -> StoreResult<Option<(String, i64)>>;
    /// The newest SMS messages: phone, code, time.
    async fn inbox(&self, limit: i64) -> StoreResult<Vec<(String, String, i64)>>;
}

/// Installation keys.
#[async_trait::async_trait]
pub trait Keys: Send + Sync {
    /// A 32-byte key this installation keeps, made on first use.
    async fn app_key(&self, name: &str) -> StoreResult<[u8; 32]>;
}

/// The OpenID Connect provider.
#[async_trait::async_trait]
pub trait Oidc: Send + Sync {
    /// Registers a client, audited (`actor`: the administrator, `None` for the command line).
    async fn add_client(&self, client: &crate::oidc::Client, actor: Option<i64>)
    -> StoreResult<()>;
    /// The client with this id.
    async fn client(&self, id: &str) -> StoreResult<Option<crate::oidc::Client>>;
    /// Every client, oldest first.
    async fn clients(&self) -> StoreResult<Vec<crate::oidc::Client>>;
    /// Removes a client, its codes and its tokens, audited; whether it existed.
    async fn remove_client(&self, id: &str, actor: Option<i64>) -> StoreResult<bool>;
    /// Replaces a confidential client's secret (its hash), audited; whether it exists.
    async fn set_client_secret(
        &self,
        id: &str,
        hash: [u8; 32],
        actor: Option<i64>,
    ) -> StoreResult<bool>;
    /// Changes a client's name and redirect URIs, audited with what changed, in one
    /// transaction; whether it exists.
    async fn edit_client(&self, edit: &ClientEdit, actor: Option<i64>) -> StoreResult<bool>;
    /// What was done to a client, newest first.
    async fn client_audit(&self, id: &str, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The signing keys still of use at `now`: the current one first, then those retired less
    /// than `keep` seconds ago (tokens they signed may still be checked).
    async fn signing_keys(&self, now: i64, keep: i64) -> StoreResult<Vec<crate::oidc::SigningKey>>;
    /// Makes `key` the current signing key and retires the one before, in one step. With
    /// `first`, only if there is no current key yet (two first uses at once keep one key):
    /// whether it was stored.
    async fn add_signing_key(
        &self,
        key: &crate::oidc::SigningKey,
        first: bool,
    ) -> StoreResult<bool>;
    /// Stores a new authorization code.
    async fn add_code(&self, code: &OidcCode) -> StoreResult<()>;
    /// Redeems a code once and stores what `issue` makes of it, in one transaction: of two
    /// redemptions at once exactly one gets the code, and a later one revokes every token of
    /// its grant.
    async fn exchange_code(
        &self,
        hash: [u8; 32],
        now: i64,
        issue: Issue<OidcCode>,
    ) -> StoreResult<Exchanged<OidcCode>>;
    /// The live, unrevoked access token with this hash.
    async fn access_token(&self, hash: [u8; 32], now: i64) -> StoreResult<Option<OidcToken>>;
    /// Redeems a refresh token once and stores what `issue` makes of it, in one transaction;
    /// reusing an old one revokes its grant (RFC 6819 §5.2.2.3).
    async fn exchange_refresh(
        &self,
        hash: [u8; 32],
        now: i64,
        issue: Issue<OidcToken>,
    ) -> StoreResult<Exchanged<OidcToken>>;
    /// Revokes a token of `client_id` (RFC 7009); a refresh token takes its grant with it.
    async fn revoke_token(&self, hash: [u8; 32], client_id: &str, now: i64) -> StoreResult<()>;
}

/// Decides, inside a redemption's transaction, what a redeemed code or refresh token gives:
/// the tokens to store, or why it gives none. It sees the user as stored at that moment.
pub type Issue<T> =
    Box<dyn FnOnce(&T, Option<&User>) -> Result<Vec<OidcToken>, crate::oidc::OAuthError> + Send>;

/// Operations.
#[async_trait::async_trait]
pub trait Ops: Send + Sync {
    /// The database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Deletes every row that has done its job, as of `at`; how many went.
    async fn prune(&self, at: i64) -> StoreResult<u64>;
    /// Writes a consistent copy of the live database to `path`; refuses to overwrite.
    /// Returns the copy's size in bytes.
    async fn backup(&self, path: &Path) -> StoreResult<u64>;
}
