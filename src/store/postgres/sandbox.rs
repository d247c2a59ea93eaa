//! The sandbox's stand-in state for WeChat's servers and the phone's SMS inbox.

#![allow(unused_variables)]

use super::Postgres;
use crate::store::*;

#[async_trait::async_trait]
impl SandboxState for Postgres {
    async fn expire_tokens(&self, now: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn cut_tokens(&self, until: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn insert_token(&self, token: &str, expires_at: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn expire_ticket(&self, ticket: &str, now: i64) -> StoreResult<Option<String>> {
        todo!("postgres")
    }
    async fn meet(&self, openid: &str, now: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn insert_oauth_code(
        &self,
        code: &str,
        openid: &str,
        snapshot: bool,
        expires_at: i64,
    ) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn use_oauth_code(&self, code: &str, now: i64) -> StoreResult<OauthCodeUse> {
        todo!("postgres")
    }
    async fn live_token(&self, now: i64) -> StoreResult<Option<(String, i64)>> {
        todo!("postgres")
    }
    async fn token_expiry(&self, token: &str) -> StoreResult<Option<i64>> {
        todo!("postgres")
    }
    async fn insert_ticket(&self, ticket: &str, scene: &str, expires_at: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn ticket_scene(&self, ticket: &str, now: i64) -> StoreResult<Option<String>> {
        todo!("postgres")
    }
    async fn follower(&self, openid: &str) -> StoreResult<Option<(bool, i64)>> {
        todo!("postgres")
    }
    async fn follow(&self, openid: &str, now: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn recent_openids(&self, limit: i64) -> StoreResult<Vec<String>> {
        todo!("postgres")
    }
    async fn deliver_sms(&self, phone: &str, code: &str, now: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn newest_sms(&self, phone: &str) -> StoreResult<Option<(String, i64)>> {
        todo!("postgres")
    }
    async fn inbox(&self, limit: i64) -> StoreResult<Vec<(String, String, i64)>> {
        todo!("postgres")
    }
}
