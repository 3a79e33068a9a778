//! Waiting for an instance to end: what start-and-wait and status-and-wait answer with. The
//! wait rests on the runtime's announcement of each instance that ends, never on polling; the
//! stored status decides, so an announcement missed (or one that came before the wait began)
//! loses nothing.

use super::{Runtime, RuntimeError};
use crate::history::InstanceId;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The longest a caller may wait for an instance to end.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

impl Runtime {
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
