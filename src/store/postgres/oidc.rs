//! The OpenID Connect provider: clients, signing keys, codes, tokens.

#![allow(unused_variables)]

use super::Postgres;
use crate::store::*;

#[async_trait::async_trait]
impl Oidc for Postgres {
    async fn add_client(&self, client: &crate::oidc::Client, actor: Option<i64>)
    -> StoreResult<()> {
        todo!("postgres")
    }
    async fn client(&self, id: &str) -> StoreResult<Option<crate::oidc::Client>> {
        todo!("postgres")
    }
    async fn clients(&self) -> StoreResult<Vec<crate::oidc::Client>> {
        todo!("postgres")
    }
    async fn remove_client(&self, id: &str, actor: Option<i64>) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn set_client_secret(
        &self,
        id: &str,
        hash: [u8; 32],
        actor: Option<i64>,
    ) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn edit_client(&self, edit: &ClientEdit, actor: Option<i64>) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn client_audit(&self, id: &str, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        todo!("postgres")
    }
    async fn signing_keys(&self, now: i64, keep: i64) -> StoreResult<Vec<crate::oidc::SigningKey>> {
        todo!("postgres")
    }
    async fn add_signing_key(
        &self,
        key: &crate::oidc::SigningKey,
        first: bool,
    ) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn add_code(&self, code: &OidcCode) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn exchange_code(
        &self,
        hash: [u8; 32],
        now: i64,
        issue: Issue<OidcCode>,
    ) -> StoreResult<Exchanged<OidcCode>> {
        todo!("postgres")
    }
    async fn access_token(&self, hash: [u8; 32], now: i64) -> StoreResult<Option<OidcToken>> {
        todo!("postgres")
    }
    async fn exchange_refresh(
        &self,
        hash: [u8; 32],
        now: i64,
        issue: Issue<OidcToken>,
    ) -> StoreResult<Exchanged<OidcToken>> {
        todo!("postgres")
    }
    async fn revoke_token(&self, hash: [u8; 32], client_id: &str, now: i64) -> StoreResult<()> {
        todo!("postgres")
    }
}
