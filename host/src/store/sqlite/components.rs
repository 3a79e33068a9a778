//! Components: their bytes by digest, the order they were deployed in, and the component an
//! instance is pinned to.

use super::SqliteStore;
use super::rows::{corrupt, exec};
use crate::clock::Millis;
use crate::history::{ComponentDigest, InstanceId, Seq};
use crate::store::{ComponentStore, StoreError};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl ComponentStore for SqliteStore {
    /// Stores a component's bytes (once per digest) as the newest deployed; with `again`, a
    /// component stored before becomes the newest too (else it keeps its place).
    async fn put_component(
        &self,
        digest: ComponentDigest,
        bytes: Vec<u8>,
        again: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let next = "(SELECT coalesce(max(deploy_seq), 0) + 1 FROM components)";
            exec(
                c,
                &format!(
                    "INSERT OR IGNORE INTO components (digest, bytes, added_at, deploy_seq)
                     VALUES (?1, ?2, ?3, {next})"
                ),
                params![digest.as_str(), bytes, now as i64],
            )?;
            if again && c.changes() == 0 {
                exec(
                    c,
                    &format!(
                        "UPDATE components SET deploy_seq = {next}, added_at = ?2 WHERE digest = ?1"
                    ),
                    params![digest.as_str(), now as i64],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// The stored components' digests and deploy times, oldest deploy first.
    async fn component_list(&self) -> Result<Vec<(ComponentDigest, Millis)>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare("SELECT digest, added_at FROM components ORDER BY deploy_seq")?;
            let rows: Vec<(String, i64)> = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(d, at)| Ok((d.parse().map_err(corrupt)?, at as Millis)))
                .collect()
        })
        .await
    }

    /// Whether a component is stored (deployed).
    async fn has_component(&self, digest: ComponentDigest) -> Result<bool, StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT 1 FROM components WHERE digest = ?1")?
                    .exists([digest.as_str()])?,
            )
        })
        .await
    }

    /// Every stored component, in the order they were deployed.
    async fn stored_components(&self) -> Result<Vec<(ComponentDigest, Vec<u8>)>, StoreError> {
        self.read(|c| {
            let mut q = c.prepare("SELECT digest, bytes FROM components ORDER BY deploy_seq")?;
            let rows: Vec<(String, Vec<u8>)> = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(d, b)| Ok((d.parse().map_err(corrupt)?, b)))
                .collect()
        })
        .await
    }

    /// Moves a running instance to component `digest`, if its history still ends before
    /// `next_seq` (nothing was recorded since it was checked). Whether it moved.
    async fn set_digest(
        &self,
        id: InstanceId,
        digest: ComponentDigest,
        next_seq: Seq,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            let moved = exec(
                c,
                "UPDATE instances SET digest = ?2
                 WHERE id = ?1 AND next_seq = ?3 AND status IN ('Pending', 'Running', 'Suspended')",
                params![id.as_str(), digest.as_str(), next_seq as i64],
            )?;
            Ok(moved == 1)
        })
        .await
    }

    /// A stored component's bytes.
    async fn component_bytes(
        &self,
        digest: ComponentDigest,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT bytes FROM components WHERE digest = ?1",
                [digest.as_str()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }
}
