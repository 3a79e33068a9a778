//! Leases and notices between the nodes that share a database. A node's own lease is a row of
//! `weft_nodes` it renews (`until`, in the database's time, so the nodes' clocks need not
//! agree); an instance is held by the node named in its `owner` column, with `lease_epoch`
//! counting changes of holder, for as long as that node's lease runs. Notices go through
//! `NOTIFY weft` (sent on commit) to a connection each node keeps listening.

use super::rows::instance_id;
use super::{PostgresStore, schema};
use crate::history::{InstanceId, RuntimeStatus};
use crate::store::{ActivityWork, Claim, LeaseStore, Notice, StoreError};
use async_trait::async_trait;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Config};

/// The channel every node listens on.
const CHANNEL: &str = "weft";

/// Whether the instance's holder is not a live node: the condition a claim takes it on.
const UNHELD: &str = "(i.owner IS NULL OR i.owner = $1 OR NOT EXISTS (
    SELECT 1 FROM weft_nodes n WHERE n.id = i.owner AND n.until > now()))";

/// Whether `name` can name a node: it travels in notices, which `|` separates.
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A notice as text: `FROM|TO|KIND|ARG`, `TO` being `*` for every node.
fn encode(from: &str, to: Option<&str>, notice: &Notice) -> String {
    let (kind, arg) = match notice {
        Notice::Attend(id) => ("attend", id.to_string()),
        Notice::Moved(id) => ("moved", id.to_string()),
        Notice::Work => ("work", String::new()),
        Notice::Deployed => ("deployed", String::new()),
        Notice::Clock(at) => ("clock", at.to_string()),
        Notice::Ended(id, status) => ("ended", format!("{}:{id}", status.as_str())),
        Notice::Left => ("left", String::new()),
        Notice::Missed => ("missed", String::new()),
    };
    format!("{from}|{}|{kind}|{arg}", to.unwrap_or("*"))
}

/// The notice in `payload` if it is for `node` (and not from it).
fn decode(node: &str, payload: &str) -> Option<Notice> {
    let mut parts = payload.splitn(4, '|');
    let (from, to, kind, arg) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if from == node || (to != "*" && to != node) {
        return None;
    }
    Some(match kind {
        "attend" => Notice::Attend(arg.parse().ok()?),
        "moved" => Notice::Moved(arg.parse().ok()?),
        "work" => Notice::Work,
        "left" => Notice::Left,
        "deployed" => Notice::Deployed,
        "clock" => Notice::Clock(arg.parse().ok()?),
        "ended" => {
            let (status, id) = arg.split_once(':')?;
            Notice::Ended(id.parse().ok()?, RuntimeStatus::parse(status)?)
        }
        _ => return None,
    })
}

/// Listens for notices to `node` on a connection of its own and passes them on; when the
/// connection breaks, connects again and passes on [`Notice::Missed`]. Returns once the first
/// `LISTEN` is in place, so no notice sent after opening is missed.
pub(super) async fn listen(
    config: Config,
    node: String,
) -> Result<(tokio::task::JoinHandle<()>, mpsc::UnboundedReceiver<Notice>), schema::OpenError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let first = subscribe(&config).await?;
    let task = tokio::spawn(async move {
        let mut connection = Some(first);
        loop {
            if let Some((client, connection)) = connection.take() {
                pass_on(client, connection, &node, &tx).await;
            }
            if tx.is_closed() {
                return;
            }
            tracing::warn!("lost the connection that listens for other nodes' notices");
            tokio::time::sleep(Duration::from_secs(1)).await;
            match subscribe(&config).await {
                Ok(c) => {
                    connection = Some(c);
                    let _ = tx.send(Notice::Missed);
                }
                Err(e) => tracing::warn!("cannot listen for notices again yet: {e}"),
            }
        }
    });
    Ok((task, rx))
}

type Listening = (
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
);

/// A connection that listens on [`CHANNEL`].
async fn subscribe(config: &Config) -> Result<Listening, schema::OpenError> {
    let (client, mut connection) = schema::connect(config).await?;
    let listening = {
        // The connection must be driven for the LISTEN to be answered.
        let sql = format!("LISTEN {CHANNEL}");
        let listen = client.batch_execute(&sql);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                r = &mut listen => break r.map_err(|e| e.to_string()),
                m = std::future::poll_fn(|cx| connection.poll_message(cx)) => match m {
                    None => break Err("the connection closed".to_string()),
                    Some(Err(e)) => break Err(e.to_string()),
                    Some(Ok(_)) => {}
                },
            }
        }
    };
    listening.map_err(schema::OpenError::Connect)?;
    Ok((client, connection))
}

/// Passes on the notices for `node` until the connection closes.
async fn pass_on(
    _client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<
        tokio_postgres::Socket,
        tokio_postgres::tls::NoTlsStream,
    >,
    node: &str,
    tx: &mpsc::UnboundedSender<Notice>,
) {
    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(AsyncMessage::Notification(n)) => {
                if let Some(notice) = decode(node, n.payload())
                    && tx.send(notice).is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("the notice connection broke: {e}");
                return;
            }
        }
    }
}

#[async_trait]
impl LeaseStore for PostgresStore {
    fn shared(&self) -> bool {
        true
    }

    async fn renew(&self, lease: Duration) -> Result<(), StoreError> {
        self.rows(
            "INSERT INTO weft_nodes (id, until, started_at)
             VALUES ($1, now() + make_interval(secs => $2), now())
             ON CONFLICT (id) DO UPDATE SET until = excluded.until",
            &[&self.node, &lease.as_secs_f64()],
        )
        .await?;
        Ok(())
    }

    async fn claim(&self, id: InstanceId) -> Result<Claim, StoreError> {
        let sql = format!(
            "UPDATE instances i SET owner = $1, lease_epoch = i.lease_epoch + 1
             WHERE i.id = $2 AND {UNHELD} RETURNING i.lease_epoch"
        );
        if let Some(row) = self.row(&sql, &[&self.node, &id.as_str()]).await? {
            return Ok(Claim::Held(row.get::<_, i64>(0) as u64));
        }
        let row = self
            .row("SELECT owner FROM instances WHERE id = $1", &[&id.as_str()])
            .await?;
        Ok(match row {
            None => Claim::Missing,
            Some(row) => match row.get::<_, Option<String>>(0) {
                Some(owner) => Claim::Elsewhere(owner),
                // Let go of between the two statements: try again.
                None => Box::pin(self.claim(id)).await?,
            },
        })
    }

    async fn release(&self, id: InstanceId, epoch: u64) -> Result<(), StoreError> {
        self.rows(
            "UPDATE instances SET owner = NULL
             WHERE id = $1 AND owner = $2 AND lease_epoch = $3",
            &[&id.as_str(), &self.node, &(epoch as i64)],
        )
        .await?;
        Ok(())
    }

    async fn claim_orphans(
        &self,
        mine: bool,
        limit: usize,
    ) -> Result<Vec<(InstanceId, u64)>, StoreError> {
        let rows = if mine {
            self.rows(
                "UPDATE instances SET lease_epoch = lease_epoch + 1
                 WHERE owner = $1 AND status IN ('Pending', 'Running', 'Suspended')
                 RETURNING id, lease_epoch",
                &[&self.node],
            )
            .await?
        } else {
            self.rows(
                "UPDATE instances SET owner = $1, lease_epoch = lease_epoch + 1
                 WHERE id IN (
                     SELECT i.id FROM instances i
                     WHERE i.owner IS NOT NULL AND i.owner <> $1
                       AND i.status IN ('Pending', 'Running', 'Suspended')
                       AND NOT EXISTS (SELECT 1 FROM weft_nodes n
                                       WHERE n.id = i.owner AND n.until > now())
                     LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id, lease_epoch",
                &[&self.node, &(limit as i64)],
            )
            .await?
        };
        rows.iter()
            .map(|r| Ok((instance_id(r, 0)?, r.get::<_, i64>(1) as u64)))
            .collect()
    }

    async fn claim_activities(
        &self,
        mine: bool,
        limit: usize,
    ) -> Result<Vec<ActivityWork>, StoreError> {
        let claimable = if mine {
            "b.claimed_by = $1"
        } else {
            "(b.claimed_by IS NULL OR (b.claimed_by <> $1 AND NOT EXISTS (
                 SELECT 1 FROM weft_nodes n WHERE n.id = b.claimed_by AND n.until > now())))"
        };
        let sql = format!(
            "UPDATE activities a SET claimed_by = $1 FROM instances i
             WHERE i.id = a.instance_id AND (a.instance_id, a.pos) IN (
                 SELECT b.instance_id, b.pos FROM activities b
                 WHERE {claimable}
                   AND NOT EXISTS (SELECT 1 FROM timers t
                                   WHERE t.instance_id = b.instance_id AND t.pos = b.pos)
                 ORDER BY b.instance_id, b.pos
                 LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING a.instance_id, a.pos, a.name, a.input, a.attempt, i.digest, {}, i.name",
            super::work::TRACE
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.rows(&sql, &[&self.node, &limit]).await?;
        rows.iter().map(super::work::activity).collect()
    }

    async fn notify(&self, to: Option<&str>, notice: Notice) -> Result<(), StoreError> {
        let payload = encode(&self.node, to, &notice);
        self.rows("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await?;
        Ok(())
    }

    fn notices(&self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        self.notices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_reaches_the_node_it_is_for_and_not_its_sender() {
        let id: InstanceId = "order-1".parse().unwrap();
        let to_b = encode("a", Some("b"), &Notice::Attend(id.clone()));
        assert_eq!(decode("b", &to_b), Some(Notice::Attend(id)));
        assert_eq!(decode("c", &to_b), None);
        let ended = Notice::Ended("x:1".parse().unwrap(), RuntimeStatus::Failed);
        assert_eq!(decode("b", &encode("a", None, &ended)), Some(ended));
        let all = encode("a", None, &Notice::Clock(42));
        assert_eq!(decode("b", &all), Some(Notice::Clock(42)));
        assert_eq!(decode("a", &all), None);
        assert_eq!(decode("b", "a|*|unknown|"), None);
        assert!(valid_node_name("node-1.eu_west"));
        assert!(!valid_node_name("a|b") && !valid_node_name(""));
    }
}
