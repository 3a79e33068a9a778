//! Restarting an ended instance: a new instance of its orchestration with the same input.

use super::{Runtime, RuntimeError};
use crate::history::{HistoryEvent, InstanceId};
use serde_json::Value;

impl Runtime {
    /// Starts a new instance (`new_id`, or a fresh id) of ended instance `id`'s orchestration
    /// with the input its first run was given, on the component that serves the name now.
    pub async fn restart(
        &self,
        id: &InstanceId,
        new_id: Option<InstanceId>,
    ) -> Result<InstanceId, RuntimeError> {
        let row = self.row(id).await?;
        if !row.status.is_terminal() {
            return Err(RuntimeError::NotEnded {
                id: id.clone(),
                status: row.status,
            });
        }
        let first = match self.inner.store.archived_history(id.clone()).await?.first() {
            Some((_, r)) => Some(r.event.clone()),
            None => self
                .inner
                .store
                .history(id.clone(), 0)
                .await?
                .first()
                .map(|r| r.event.clone()),
        };
        let input = match first {
            Some(HistoryEvent::Started { input, .. }) => input,
            _ => row.input,
        };
        let input: Value = serde_json::from_str(&input).unwrap_or(Value::String(input));
        let (new, _) = self.start(&row.name, &input, new_id, None).await?;
        tracing::info!(instance = %new, "restarted from '{id}'");
        Ok(new)
    }
}
