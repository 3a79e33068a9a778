//! Instances ending: the announcement of each end (to waiters here, to the other nodes and
//! to the metrics), and waiting for an instance to end, what start-and-wait and
//! status-and-wait answer with. The wait rests on the announcements, never on polling; the
//! stored status decides, so an announcement missed (or one that came before the wait began)
//! loses nothing.

use super::{Runtime, RuntimeError, RuntimeStatus};
use crate::history::InstanceId;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The longest a caller may wait for an instance to end.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

impl Runtime {
    /// Announces every instance that ends from now on, with its final status.
    pub fn subscribe_finished(
        &self,
    ) -> tokio::sync::broadcast::Receiver<(InstanceId, RuntimeStatus)> {
        self.inner.finished.subscribe()
    }

    /// Announces an instance's end here, and to the other nodes sharing the store.
    pub(crate) fn announce_finished(
        &self,
        id: &InstanceId,
        orchestration: &str,
        status: RuntimeStatus,
    ) {
        crate::metrics::get().finished(orchestration, status.as_str());
        let _ = self.inner.finished.send((id.clone(), status));
        self.announce(crate::store::Notice::Ended(id.clone(), status));
    }

    /// The orchestration instance `id` runs (for metrics; `unknown` if it cannot be read).
    pub(super) async fn orchestration_of(&self, id: &InstanceId) -> String {
        match self.inner.store.instance(id.clone()).await {
            Ok(Some(row)) => row.name,
            _ => "unknown".into(),
        }
    }

    /// Waits at most `timeout` (capped at [`MAX_WAIT`]) for instance `id` to end; whether it
    /// has ended when this returns.
    pub async fn wait_for_end(
        &self,
        id: &InstanceId,
        timeout: Duration,
    ) -> Result<bool, RuntimeError> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
        // Subscribed before the status is read: an end after the read is announced to us.
        let mut ended = self.subscribe_finished();
        loop {
            let row = self.row(id).await?;
            if row.status.is_terminal() {
                return Ok(true);
            }
            loop {
                match tokio::time::timeout_at(deadline, ended.recv()).await {
                    Err(_) | Ok(Err(RecvError::Closed)) => return Ok(false),
                    Ok(Ok((done, _))) if done == *id => break,
                    Ok(Ok(_)) => {}
                    // Announcements were missed: the stored status tells.
                    Ok(Err(RecvError::Lagged(_))) => break,
                }
            }
        }
    }
}
