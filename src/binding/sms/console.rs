//! `console`: prints codes on stdout and, in sandbox mode, fills the sandbox's SMS inbox.

use sqlx::SqlitePool;

use super::{SmsError, SmsSender};
use crate::{binding::phone::Phone, db::now};

/// Development sender: prints the code on the console (stdout, not the log), and in sandbox
/// mode puts it in the sandbox's SMS inbox. Never for production: it delivers nothing.
pub struct ConsoleSms {
    /// The sandbox inbox, in sandbox mode.
    pub sandbox_inbox: Option<SqlitePool>,
}

#[async_trait::async_trait]
impl SmsSender for ConsoleSms {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SmsError> {
        if let Some(db) = &self.sandbox_inbox {
            sqlx::query("INSERT INTO sandbox_sms (phone, code, sent_at) VALUES (?, ?, ?)")
                .bind(phone.e164())
                .bind(code)
                .bind(now())
                .execute(db)
                .await
                .map_err(|e| SmsError::transport("console", e))?;
        }
        // The console *is* this sender's delivery channel; the code goes to stdout, never
        // through the structured log.
        println!(
            "[console SMS] to {}: your wxlogin code is {code}",
            phone.e164()
        );
        Ok(())
    }
}
