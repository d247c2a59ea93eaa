//! The records the store trades in: plain data, as stored. Their rules and their words live
//! with the features (`impl Scene` in `login::scene`, the admin list's parsing in
//! `admin::users`, ...).

/// A scene's stored state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SceneState {
    /// Waiting for a scan.
    Pending,
    /// Scanned by a bound, enabled person: the browser may log in.
    Authorized,
    /// Scanned by someone with no phone bound yet.
    NeedsBind,
    /// Scanned by a disabled person.
    Rejected,
    /// Redeemed by its browser.
    Consumed,
}

impl SceneState {
    /// Every state.
    pub const ALL: [SceneState; 5] = [
        SceneState::Pending,
        SceneState::Authorized,
        SceneState::NeedsBind,
        SceneState::Rejected,
        SceneState::Consumed,
    ];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            SceneState::Pending => "pending",
            SceneState::Authorized => "authorized",
            SceneState::NeedsBind => "needs_bind",
            SceneState::Rejected => "rejected",
            SceneState::Consumed => "consumed",
        }
    }

    /// Parses [`SceneState::as_str`].
    pub fn parse(stored: &str) -> Option<SceneState> {
        SceneState::ALL.into_iter().find(|s| s.as_str() == stored)
    }
}

/// How a person logged in. Recorded with every login, shown to administrators, and sent to
/// sites as the id_token's `amr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginMethod {
    /// Scanned the login QR code with WeChat.
    #[default]
    Scan,
    /// Opened the login inside WeChat's browser: the Official Account's web authorization.
    WechatOauth,
    /// An SMS code sent to the person's phone.
    Sms,
}

impl LoginMethod {
    /// Every method.
    pub const ALL: [LoginMethod; 3] = [
        LoginMethod::Scan,
        LoginMethod::WechatOauth,
        LoginMethod::Sms,
    ];

    /// As stored (and as `amr`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Scan => "scan",
            LoginMethod::WechatOauth => "wechat_oauth",
            LoginMethod::Sms => "sms",
        }
    }

    /// Parses [`LoginMethod::as_str`].
    pub fn parse(stored: &str) -> Option<LoginMethod> {
        LoginMethod::ALL.into_iter().find(|m| m.as_str() == stored)
    }
}

/// One login: a QR code to scan, or a login by another way (then with no QR code).
#[derive(Debug, Clone)]
pub struct Scene {
    /// The secret WeChat echoes in the scan event (160 random bits, hex).
    pub scene: String,
    /// The browser key of the session that created it.
    pub owner: String,
    /// WeChat's ticket for the QR code (`<method>:<scene>` for a login without one).
    pub ticket: String,
    /// What the QR code encodes.
    pub qr_url: String,
    /// Stored state.
    pub state: SceneState,
    /// Who scanned it.
    pub openid: Option<String>,
    /// Their user, when bound.
    pub user_id: Option<i64>,
    /// Page language of the browser that showed it (WeChat replies use it too).
    pub lang: String,
    /// Browser address.
    pub client_ip: Option<String>,
    /// Browser user agent.
    pub user_agent: Option<String>,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// The QR code dies at this time.
    pub expires_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// How the login happens.
    pub method: LoginMethod,
}

/// A redeemed login: whom to log in, at which session epoch, and how they logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redeemed {
    pub user_id: i64,
    pub epoch: i64,
    pub method: LoginMethod,
}

/// What using a sandbox web-authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OauthCodeUse {
    /// Used now, for the first time: whose it is, and whether a snapshot page's user.
    Fresh { openid: String, snapshot: bool },
    /// Used before.
    Used,
    /// Never issued, or expired.
    Unknown,
}

/// A web authorization setting out through WeChat.
#[derive(Debug, Clone)]
pub struct OauthStart {
    /// The random `state` sent along.
    pub state: String,
    /// The browser that started it.
    pub owner: String,
    /// What per-client limits count by.
    pub client_key: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// How a login that needs no QR code moves on, given the user with its openid (id, disabled)
/// and the time: the rule [`crate::login::scene::decide`] the store runs in its transaction.
pub type DecideRule = fn(Option<(i64, bool)>, i64) -> SceneChange;

/// A login by SMS code, ready to be stored.
#[derive(Debug, Clone)]
pub struct PhoneLogin {
    /// The authorized scene to store (its user filled in by the store).
    pub scene: Scene,
    /// E.164.
    pub phone: String,
    /// The code that was right.
    pub code_id: i64,
    /// A phone with no user gets a new one (`WXLOGIN_PHONE_LOGIN=open`).
    pub open: bool,
}

/// What a login by SMS code came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneLoggedIn {
    /// Logged in: redeem the stored scene.
    Yes(i64),
    /// The person is disabled.
    Disabled,
    /// The code was used meanwhile, or this phone may not log in.
    Refused,
}

/// One of a client's new-QR slots, taken by [`crate::store::Scenes::reserve_qr_slot`]: spent
/// by storing the scene made with it, or given back when dropped. Dropping is what frees it,
/// so a request abandoned halfway (the visitor hung up while WeChat was slow) frees it too.
pub struct QrSlot {
    key: String,
    /// The row that holds the slot, where a backend keeps one (PostgreSQL's `qr_reservations`).
    reservation: Option<i64>,
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl QrSlot {
    /// A slot of client `key` that runs `release` once, when it is dropped.
    pub fn new(key: String, release: impl FnOnce() + Send + Sync + 'static) -> QrSlot {
        QrSlot {
            key,
            reservation: None,
            release: Some(Box::new(release)),
        }
    }

    /// A slot held by the stored row `reservation`, which `release` deletes when the slot is
    /// dropped unspent.
    pub fn reserved(
        key: String,
        reservation: i64,
        release: impl FnOnce() + Send + Sync + 'static,
    ) -> QrSlot {
        QrSlot {
            key,
            reservation: Some(reservation),
            release: Some(Box::new(release)),
        }
    }

    /// What the client is counted by.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The row that holds the slot, if the backend keeps one.
    pub fn reservation(&self) -> Option<i64> {
        self.reservation
    }

    /// Spends the slot without running its release: for a backend whose release is already
    /// done by the store that spent it (the reservation deleted with the scene's insert).
    pub fn spent(mut self) {
        self.release = None;
    }
}

impl Drop for QrSlot {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for QrSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QrSlot")
    }
}

/// What a scan (or a binding) came to, as the login history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The person may log in.
    LoggedIn,
    /// The person must bind a phone first.
    NeedsBind,
    /// The person is disabled.
    Disabled,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 3] = [Outcome::LoggedIn, Outcome::NeedsBind, Outcome::Disabled];

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::LoggedIn => "logged_in",
            Outcome::NeedsBind => "needs_bind",
            Outcome::Disabled => "disabled",
        }
    }

    /// Parses [`Outcome::as_str`].
    pub fn parse(stored: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == stored)
    }
}

/// A person who has bound a phone number.
#[derive(Debug, Clone)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// E.164.
    pub phone: String,
    /// Their WeChat, unless unbound.
    pub openid: Option<String>,
    /// Open Platform id, when WeChat gives one.
    pub unionid: Option<String>,
    /// May use the admin area.
    pub is_admin: bool,
    /// Refused at login.
    pub disabled: bool,
    /// When the row was made.
    pub created_at: i64,
    /// When the WeChat was bound.
    pub bound_at: Option<i64>,
    /// Last completed login.
    pub last_login_at: Option<i64>,
    /// Sessions logged in at an older epoch are over ("log out everywhere").
    pub session_epoch: i64,
}

// ---------------------------------------------------------------------------------------------
// Callbacks

/// A verified callback delivery, as the store records it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The signed query's (signature, timestamp, nonce): an exact replay is answered from it.
    pub request: [String; 3],
    /// `FromUserName`.
    pub from_user: String,
    /// `CreateTime`.
    pub create_time: i64,
    /// The rest of the delivery's identity (the event, and for a scan its scene).
    pub event: String,
    /// What the delivery does.
    pub effect: Effect,
    /// When it arrived.
    pub now: i64,
}

/// What a delivery does, seen for the first time.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A scan of a login QR code (also a first follow through one): the sender follows, and
    /// the scene moves on as the rule says.
    Scan {
        /// The scene in the event key.
        scene: String,
    },
    /// The sender now follows (`true`) or no longer does, and gets `reply`.
    Follow {
        /// Follows from now on.
        following: bool,
        /// What to show them.
        reply: Option<String>,
    },
    /// Only a reply.
    Reply(Option<String>),
}

/// What the scan rule sees: the scene scanned, who scanned, and their user if bound.
#[derive(Debug, Clone)]
pub struct ScanFacts<'a> {
    /// The scene, as stored before this scan; `None` for one nobody stored (or long pruned).
    pub scene: Option<&'a Scene>,
    /// The scanning WeChat.
    pub openid: &'a str,
    /// Their user: id and whether disabled.
    pub user: Option<(i64, bool)>,
    /// Now.
    pub now: i64,
}

/// What a scan does, decided by the feature's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanVerdict {
    /// What to show the person in WeChat.
    pub reply: Option<String>,
    /// How the scene moves on, if it does.
    pub change: Option<SceneChange>,
}

/// A scene moved on by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneChange {
    /// Its new state.
    pub state: SceneState,
    /// The login history's outcome.
    pub outcome: Outcome,
    /// The scanner's user, when bound.
    pub user_id: Option<i64>,
    /// The scene lives at least until then (a first-time scanner needs time to bind).
    pub least_expiry: i64,
}

/// The scan rule: given what the store found, what the scan does. A function of the feature's
/// (with what it needs of the settings), so the store runs it inside its transaction without
/// knowing the rules.
pub type ScanRule = Box<dyn Fn(&ScanFacts<'_>) -> ScanVerdict + Send>;

/// What recording a delivery came to.
#[derive(Debug)]
pub enum Recorded {
    /// This exact signed request was seen before: its first answer, whatever the body says.
    ReplayedRequest(Option<String>),
    /// WeChat retried a delivery already handled: the same answer, no second effect.
    RepeatedDelivery(Option<String>),
    /// Handled now: the answer, and the scene the scan moved on (state and browser), if any.
    Handled {
        /// What to show the person.
        reply: Option<String>,
        /// The scene moved on: its new state and its browser.
        resolved: Option<(SceneState, String)>,
    },
}

// ---------------------------------------------------------------------------------------------
// Binding

/// A new SMS code.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// Its login.
    pub scene: String,
    /// E.164.
    pub phone: String,
    /// The keyed hash of the code.
    pub code_hash: Vec<u8>,
    /// Now.
    pub created_at: i64,
    /// Dead from then on.
    pub expires_at: i64,
    /// What per-client limits count by (an address, or an IPv6 /64); empty when unknown.
    pub client_key: String,
}

/// The send limits, in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Seconds between two codes for one login or one phone.
    pub resend_seconds: i64,
    /// Codes per phone in any hour.
    pub per_phone_hour: i64,
    /// Codes per phone in any 24 hours.
    pub per_phone_day: i64,
    /// Codes per client in any hour.
    pub per_ip_hour: i64,
}

/// Which limit holds a send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A code was sent to this login or this phone less than the cooldown ago.
    Resend,
    /// Too many codes to this phone in the last hour.
    PhoneHour,
    /// Too many codes to this phone in the last 24 hours.
    PhoneDay,
    /// Too many codes from this client in the last hour.
    IpHour,
}

/// A refused send: which limit, and the Unix time from which a send would pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The limit that holds the longest.
    pub limit: Limit,
    /// When it clears.
    pub until: i64,
}

/// A try at a code, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTry {
    /// Counted: compare against `code_hash`; `attempts` tries are now used.
    Counted {
        /// The code's row.
        id: i64,
        /// Its keyed hash.
        code_hash: Vec<u8>,
        /// Tries used, this one included.
        attempts: i64,
    },
    /// The newest code is expired, used, or out of tries: nothing was counted.
    Dead,
    /// No code was sent for this login and phone.
    None,
}

/// A binding to make.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    /// The scene waiting for it.
    pub scene: Scene,
    /// The scanning WeChat.
    pub openid: String,
    /// E.164.
    pub phone: String,
    /// The code that proved the phone.
    pub code_id: i64,
    /// Now.
    pub now: i64,
}

/// The outcome of linking a WeChat to a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// Bound to this user; the scene is authorized.
    Yes(i64),
    /// The phone's user has another WeChat.
    PhoneTaken,
    /// This WeChat was bound to another phone meanwhile (a race with another browser).
    WechatTaken,
    /// The phone's user is disabled.
    Disabled,
    /// The scene or the code was used meanwhile (a double submit).
    Gone,
}

// ---------------------------------------------------------------------------------------------
// Admin

/// A yes/no filter that may be off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tri {
    /// No filter.
    #[default]
    Any,
    /// Only rows where it holds.
    Yes,
    /// Only rows where it doesn't.
    No,
}

/// The order of the users list, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// By the time the WeChat was bound.
    #[default]
    Bound,
    /// By the last login.
    LastLogin,
}

/// Where a page of the users list starts: after the row with this sort value and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort column's value; `None` in the rows that have none (listed last).
    pub value: Option<i64>,
    /// The row's id (ties are broken by id, descending).
    pub id: i64,
}

/// A parsed users query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Search text, trimmed; `None` when empty.
    pub q: Option<String>,
    /// `disabled=`.
    pub disabled: Tri,
    /// `following=`.
    pub following: Tri,
    /// `admin=`.
    pub admin: Tri,
    /// `sort=`.
    pub sort: Sort,
    /// `after=`.
    pub after: Option<Cursor>,
}

/// One row of the users list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Row id.
    pub id: i64,
    /// E.164.
    pub phone: String,
    /// Their WeChat, unless unbound.
    pub openid: Option<String>,
    /// Open Platform id, when known.
    pub unionid: Option<String>,
    /// Follows the Official Account.
    pub following: bool,
    /// May use the admin area.
    pub is_admin: bool,
    /// Refused at login.
    pub disabled: bool,
    /// When the WeChat was bound.
    pub bound_at: Option<i64>,
    /// Last completed login.
    pub last_login_at: Option<i64>,
}

impl UserRow {
    /// The cursor of a page that ends with this row.
    pub fn cursor(&self, sort: Sort) -> Cursor {
        Cursor {
            value: match sort {
                Sort::Bound => self.bound_at,
                Sort::LastLogin => self.last_login_at,
            },
            id: self.id,
        }
    }
}

/// A login event with the phone of its user, as the dashboard lists it.
#[derive(Debug, Clone)]
pub struct LoginRow {
    /// Its id.
    pub id: i64,
    /// The user, once bound.
    pub user_id: Option<i64>,
    /// The user's phone (E.164).
    pub phone: Option<String>,
    /// The scanning WeChat.
    pub openid: String,
    /// What it came to.
    pub outcome: Outcome,
    /// How.
    pub method: LoginMethod,
    /// Where the login page was opened.
    pub client_ip: Option<String>,
    /// Its browser.
    pub user_agent: Option<String>,
    /// When.
    pub at: i64,
}

/// The dashboard's figures.
#[derive(Debug, Clone, Default)]
pub struct Dashboard {
    /// Users in all.
    pub users: i64,
    /// Disabled users.
    pub disabled: i64,
    /// Users whose WeChat follows the account.
    pub following: i64,
    /// New bindings per day number (days since the epoch in the given offset).
    pub bindings: std::collections::HashMap<i64, i64>,
    /// Completed logins per day number.
    pub logins: std::collections::HashMap<i64, i64>,
    /// The newest login events, newest first.
    pub latest: Vec<LoginRow>,
}

/// One login event of a user's history.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// Its id.
    pub id: i64,
    /// What it came to.
    pub outcome: Outcome,
    /// How.
    pub method: LoginMethod,
    /// Where the login page was opened.
    pub client_ip: Option<String>,
    /// Its browser.
    pub user_agent: Option<String>,
    /// When.
    pub at: i64,
}

/// Something done to a user's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Refuse their logins and end their sessions.
    Disable,
    /// Undo [`Action::Disable`].
    Enable,
    /// Forget their WeChat and end their sessions: they scan and bind again (or log in by
    /// SMS code).
    Unbind,
    /// Make them an administrator.
    GrantAdmin,
    /// Make them an ordinary user again.
    RevokeAdmin,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [
        Action::Disable,
        Action::Enable,
        Action::Unbind,
        Action::GrantAdmin,
        Action::RevokeAdmin,
    ];

    /// As the audit log stores it.
    pub fn code(self) -> &'static str {
        match self {
            Action::Disable => "disable",
            Action::Enable => "enable",
            Action::Unbind => "unbind",
            Action::GrantAdmin => "grant_admin",
            Action::RevokeAdmin => "revoke_admin",
        }
    }

    /// Parses [`Action::code`].
    pub fn from_code(code: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.code() == code)
    }
}

/// One audit row, with the actor's phone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEntry {
    /// Row id.
    pub id: i64,
    /// Who acted; `None` for the command line.
    pub actor_user_id: Option<i64>,
    /// The actor's phone (E.164).
    pub actor_phone: Option<String>,
    /// [`Action::code`].
    pub action: String,
    /// When.
    pub at: i64,
    /// What changed, when worth saying.
    pub detail: Option<String>,
}

/// What an admin action did to an existing user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActOutcome {
    /// Something changed (and was audited).
    pub changed: bool,
    /// The user is disabled (after the action).
    pub disabled: bool,
}

/// An administrator, as `wxlogin admin list` shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminRow {
    /// User id.
    pub id: i64,
    /// E.164.
    pub phone: String,
    /// Their WeChat, unless unbound.
    pub openid: Option<String>,
    /// Refused at login.
    pub disabled: bool,
    /// Last completed login.
    pub last_login_at: Option<i64>,
}

/// An authorization code, as stored (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcCode {
    /// SHA-256 of the code.
    pub hash: [u8; 32],
    /// The grant the code's tokens belong to.
    pub grant_id: String,
    pub client_id: String,
    pub user_id: i64,
    pub redirect_uri: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// When the person logged in.
    pub auth_time: i64,
    /// How ([`LoginMethod::as_str`]), for `amr`.
    pub amr: String,
    pub expires_at: i64,
}

/// Which kind of token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// An access or refresh token, as stored (only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcToken {
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    pub kind: TokenKind,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: i64,
    /// Granted scopes, space-separated.
    pub scope: String,
    pub auth_time: i64,
    /// How the person logged in, for `amr`.
    pub amr: String,
    pub expires_at: i64,
}

/// The outcome of exchanging a single-use code or refresh token.
#[derive(Debug, Clone)]
pub enum Exchanged<T> {
    /// Redeemed now, for the first time, and the tokens stored: what was redeemed, and its
    /// user.
    Issued(T, User),
    /// Redeemed now (it is spent), but the check refused to issue anything.
    Refused(crate::oidc::OAuthError),
    /// Redeemed before: a replay. Everything of its grant has been revoked.
    Replayed,
    /// No such code or token (or revoked, or expired).
    Unknown,
}

/// New values for a client's name and redirect URIs (already checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEdit {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}
