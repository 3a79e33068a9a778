//! Components: their bytes by digest, the order they were deployed in, and the component an
//! instance is pinned to. Deploys take a transaction-scoped advisory lock, so concurrent
//! deploys get distinct places in the order.

use super::rows::{corrupt, exec};
use super::{PgError, PostgresStore, transaction};
use crate::clock::Millis;
use crate::history::{ComponentDigest, InstanceId, Seq};
use crate::store::{ComponentStore, StoreError};
use async_trait::async_trait;

/// The advisory lock key deploys take.
const DEPLOY_LOCK: i64 = 0x7765_6674_0003;

#[async_trait]
impl ComponentStore for PostgresStore {
    async fn put_component(
        &self,
        digest: ComponentDigest,
        bytes: Vec<u8>,
        again: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        let next = "(SELECT coalesce(max(deploy_seq), 0) + 1 FROM components)";
        transaction!(self, |tx| {
            exec(&tx, "SELECT pg_advisory_xact_lock($1)", &[&DEPLOY_LOCK]).await?;
            let inserted = exec(
                &tx,
                &format!(
                    "INSERT INTO components (digest, bytes, added_at, deploy_seq)
                     VALUES ($1, $2, $3, {next}) ON CONFLICT (digest) DO NOTHING"
                ),
                &[&digest.as_str(), &bytes, &(now as i64)],
            )
            .await?;
            if again && inserted == 0 {
                exec(
                    &tx,
                    &format!(
                        "UPDATE components SET deploy_seq = {next}, added_at = $2 WHERE digest = $1"
                    ),
                    &[&digest.as_str(), &(now as i64)],
                )
                .await?;
            }
            Ok(())
        })
    }

    async fn component_list(&self) -> Result<Vec<(ComponentDigest, Millis)>, StoreError> {
        let rows = self
            .rows(
                "SELECT digest, added_at FROM components ORDER BY deploy_seq",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let digest = r.get::<_, &str>(0).parse().map_err(corrupt)?;
                Ok((digest, r.get::<_, i64>(1) as Millis))
            })
            .collect()
    }

    async fn has_component(&self, digest: ComponentDigest) -> Result<bool, StoreError> {
        let row = self
            .row(
                "SELECT 1 FROM components WHERE digest = $1",
                &[&digest.as_str()],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn stored_components(&self) -> Result<Vec<(ComponentDigest, Vec<u8>)>, StoreError> {
        let rows = self
            .rows(
                "SELECT digest, bytes FROM components ORDER BY deploy_seq",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get::<_, &str>(0).parse().map_err(corrupt)?, r.get(1))))
            .collect()
    }

    async fn set_digest(
        &self,
        id: InstanceId,
        digest: ComponentDigest,
        next_seq: Seq,
    ) -> Result<bool, StoreError> {
        transaction!(self, |tx| {
            let moved = exec(
                &tx,
                "UPDATE instances SET digest = $2
                 WHERE id = $1 AND next_seq = $3 AND status IN ('Pending', 'Running', 'Suspended')",
                &[&id.as_str(), &digest.as_str(), &(next_seq as i64)],
            )
            .await?;
            Ok(moved == 1)
        })
    }

    async fn component_bytes(
        &self,
        digest: ComponentDigest,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .row(
                "SELECT bytes FROM components WHERE digest = $1",
                &[&digest.as_str()],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }
}
