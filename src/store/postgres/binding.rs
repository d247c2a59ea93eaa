//! Phone binding: SMS codes and their limits, linking a WeChat to a phone, SMS login.

#![allow(unused_variables)]

use super::Postgres;
use crate::store::*;

#[async_trait::async_trait]
impl Binding for Postgres {
    async fn insert_code(
        &self,
        code: NewCode,
        limits: SendLimits,
    ) -> StoreResult<Result<i64, Blocked>> {
        todo!("postgres")
    }
    async fn resend_wait(
        &self,
        scene: &str,
        phone: &str,
        resend_seconds: i64,
        now: i64,
    ) -> StoreResult<i64> {
        todo!("postgres")
    }
    async fn count_try(
        &self,
        scene: &str,
        phone: &str,
        max_attempts: i64,
        now: i64,
    ) -> StoreResult<CodeTry> {
        todo!("postgres")
    }
    async fn link(&self, link: LinkRequest) -> StoreResult<Linked> {
        todo!("postgres")
    }
    async fn phone_login(&self, login: PhoneLogin) -> StoreResult<PhoneLoggedIn> {
        todo!("postgres")
    }
    async fn store_profile(
        &self,
        user_id: i64,
        openid: &str,
        unionid: Option<&str>,
        following: bool,
        now: i64,
    ) -> StoreResult<()> {
        todo!("postgres")
    }
}
