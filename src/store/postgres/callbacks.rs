//! WeChat callbacks: the replay store, deliveries and their effect.

#![allow(unused_variables)]

use super::Postgres;
use crate::store::*;

#[async_trait::async_trait]
impl Callbacks for Postgres {
    async fn record_url_check(&self, request: [String; 3], now: i64) -> StoreResult<()> {
        todo!("postgres")
    }
    async fn record(&self, delivery: Delivery, decide: ScanRule) -> StoreResult<Recorded> {
        todo!("postgres")
    }
}
