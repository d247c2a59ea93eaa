//! Login scenes and the per-client QR quota.

#![allow(unused_variables)]

use sqlx::{Row, postgres::PgRow};

use super::Postgres;
use crate::store::*;

/// The columns of a scene, in the order [`scene_from`] reads them.
pub(super) const COLUMNS: &str = "scene, owner, ticket, qr_url, state, openid, user_id, lang, \
    client_ip, user_agent, created_at, expires_at, updated_at, method";

/// A scene from a row of [`COLUMNS`].
pub(super) fn scene_from(row: &PgRow) -> Result<Scene, StoreError> {
    let state: String = row.try_get(4)?;
    let method: String = row.try_get(13)?;
    Ok(Scene {
        scene: row.try_get(0)?,
        owner: row.try_get(1)?,
        ticket: row.try_get(2)?,
        qr_url: row.try_get(3)?,
        state: SceneState::parse(&state)
            .ok_or_else(|| anyhow::anyhow!("unknown scene state `{state}`"))?,
        openid: row.try_get(5)?,
        user_id: row.try_get(6)?,
        lang: row.try_get(7)?,
        client_ip: row.try_get(8)?,
        user_agent: row.try_get(9)?,
        created_at: row.try_get(10)?,
        expires_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        method: LoginMethod::parse(&method)
            .ok_or_else(|| anyhow::anyhow!("unknown login method `{method}`"))?,
    })
}

#[async_trait::async_trait]
impl Scenes for Postgres {
    async fn current(&self, owner: &str) -> StoreResult<Option<Scene>> {
        todo!("postgres")
    }
    async fn reserve_qr_slot(
        &self,
        key: &str,
        cap: i64,
        now: i64,
    ) -> StoreResult<Result<QrSlot, i64>> {
        todo!("postgres")
    }
    async fn insert(&self, scene: &Scene, slot: QrSlot) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn consume(&self, owner: &str, grace: i64, now: i64) -> StoreResult<Option<Redeemed>> {
        todo!("postgres")
    }
    async fn start_oauth(&self, start: &OauthStart, cap: i64) -> StoreResult<Result<(), i64>> {
        todo!("postgres")
    }
    async fn take_oauth(&self, state: &str, owner: &str, now: i64) -> StoreResult<bool> {
        todo!("postgres")
    }
    async fn insert_decided(&self, scene: Scene, decide: DecideRule) -> StoreResult<SceneChange> {
        todo!("postgres")
    }
}
