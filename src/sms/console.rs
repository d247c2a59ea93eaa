//! `console`: prints codes on stdout and, in sandbox mode, fills the sandbox's SMS inbox.

use super::{SmsError, SmsSender};
use crate::{phone::Phone, util::now};

/// Development sender: prints the code on the console (stdout, not the log), and in sandbox
/// mode puts it in the sandbox's SMS inbox. Never for production: it delivers nothing.
pub struct ConsoleSms {
    /// The sandbox inbox, in sandbox mode.
    pub sandbox_inbox: Option<crate::store::Store>,
}

#[async_trait::async_trait]
impl SmsSender for ConsoleSms {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SmsError> {
        if let Some(store) = &self.sandbox_inbox {
            store
                .sandbox
                .deliver_sms(phone.e164(), code, now())
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
