//! The admin area: lists, reports, audited actions.

#![allow(unused_variables)]

use super::Postgres;
use crate::store::*;

#[async_trait::async_trait]
impl Admin for Postgres {
    async fn users_page(
        &self,
        query: &ListQuery,
        page_size: usize,
    ) -> StoreResult<(Vec<UserRow>, Option<Cursor>)> {
        todo!("postgres")
    }
    async fn users_export(
        &self,
        query: ListQuery,
        rows: tokio::sync::mpsc::Sender<StoreResult<Vec<UserRow>>>,
    ) {
        todo!("postgres")
    }
    async fn dashboard(&self, since: i64, offset: i64, latest: i64) -> StoreResult<Dashboard> {
        todo!("postgres")
    }
    async fn logins_after(&self, after: i64, limit: i64) -> StoreResult<Vec<LoginRow>> {
        todo!("postgres")
    }
    async fn newest_login_id(&self) -> StoreResult<i64> {
        todo!("postgres")
    }
    async fn still_admin(&self, id: i64) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn history(
        &self,
        user_id: i64,
        openid: Option<&str>,
        before: (i64, i64),
        limit: i64,
    ) -> StoreResult<Vec<HistoryRow>> {
        todo!("postgres")
    }
    async fn following(&self, openid: &str) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn audit_log(&self, target: i64, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        todo!("postgres")
    }
    async fn act(
        &self,
        actor: Option<i64>,
        target: i64,
        action: Action,
        detail: Option<&str>,
    ) -> StoreResult<Option<ActOutcome>> {
        todo!("postgres")
    }
    async fn user_by_phone(&self, phone: &str) -> StoreResult<Option<(i64, bool)>> {
        todo!("postgres")
    }
    async fn admins(&self) -> StoreResult<Vec<AdminRow>> {
        todo!("postgres")
    }
}
