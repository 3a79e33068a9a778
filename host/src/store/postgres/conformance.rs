//! The conformance suite on PostgreSQL: one server per test process, started by the suite
//! itself, and a fresh database per case. A store that fills up is a database in a
//! tablespace on a small tmpfs (mounting needs root, as in CI).

use super::PostgresStore;
use super::test_server::PgServer;
use crate::store::conformance::Backend;
use crate::store::{Store, Synchronous};
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

/// How long the suite's nodes' leases last (what ends a transaction left open).
const LEASE: std::time::Duration = std::time::Duration::from_secs(10);

/// The suite's server, started on first use.
fn server() -> &'static PgServer {
    static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();
    match SERVER.get_or_init(PgServer::start) {
        Ok(server) => server,
        Err(e) => panic!("the PostgreSQL conformance suite needs a server: {e}"),
    }
}

/// A database of its own; created on first open.
struct PgDatabase {
    name: String,
    created: tokio::sync::OnceCell<()>,
    /// The tmpfs holding the database's tablespace, if it was opened full.
    tmpfs: std::sync::Mutex<Option<PathBuf>>,
}

impl PgDatabase {
    fn new() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        Self {
            name: format!("conformance_{n}"),
            created: tokio::sync::OnceCell::new(),
            tmpfs: std::sync::Mutex::new(None),
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        self.created
            .get_or_init(|| async {
                server()
                    .create_database(&self.name)
                    .await
                    .expect("a fresh database")
            })
            .await;
        Arc::new(
            PostgresStore::open(&server().url(&self.name), Synchronous::Full, "test", LEASE)
                .await
                .expect("the database opens"),
        )
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bytes used on the file system at `dir`.
fn used(dir: &std::path::Path) -> u64 {
    let out = Command::new("df")
        .args(["-B1", "--output=used"])
        .arg(dir)
        .output()
        .expect("df runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the bytes used")
}

#[async_trait]
impl Backend for PgDatabase {
    async fn open(&self) -> Arc<dyn Store> {
        if let Some(dir) = self.tmpfs.lock().unwrap().as_ref() {
            run(Command::new("mount")
                .args(["-o", "remount,size=1g"])
                .arg(dir));
        }
        self.store().await
    }

    async fn open_full_at(&self, bytes: u64) -> Arc<dyn Store> {
        let dir = server().dir().join(format!("{}_space", self.name));
        std::fs::create_dir_all(&dir).expect("the tablespace's directory");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(&dir));
        *self.tmpfs.lock().unwrap() = Some(dir.clone());
        run(Command::new("chown").arg("postgres:").arg(&dir));
        let space = format!("{}_space", self.name);
        let admin = async |sql: String| server().admin(&sql).await.expect("the tablespace");
        admin(format!(
            "CREATE TABLESPACE {space} LOCATION '{}'",
            dir.display()
        ))
        .await;
        admin(format!("CREATE DATABASE {} TABLESPACE {space}", self.name)).await;
        self.created.set(()).expect("the database is new");
        let store = self.store().await;
        let size = (used(&dir) + bytes / 2).div_ceil(4096) * 4096;
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&dir));
        store
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Some(dir) = self.tmpfs.lock().unwrap().take() {
            let _ = Command::new("umount").arg("-l").arg(&dir).status();
        }
    }
}

conformance_suite!(postgres, PgDatabase::new);

/// Leases between two nodes on one database: what only a shared store has.
mod leases {
    use super::{PgDatabase, server};
    use crate::history::HistoryEvent;
    use crate::store::WorkStore as _;
    use crate::store::conformance::{create, events};
    use crate::store::{Claim, Commit, LeaseStore as _, Notice, StoreError};
    use crate::store::{ComponentStore as _, InstanceStore as _, PostgresStore, Synchronous};
    use std::time::Duration;

    async fn node(db: &PgDatabase, name: &str) -> PostgresStore {
        PostgresStore::open(
            &server().url(&db.name),
            Synchronous::Full,
            name,
            super::LEASE,
        )
        .await
        .expect("the database opens")
    }

    /// Nodes `a` and `b`, both live, on a fresh database holding component `c`.
    async fn two_nodes() -> (PgDatabase, PostgresStore, PostgresStore) {
        let db = PgDatabase::new();
        db.store().await;
        let (a, b) = (node(&db, "a").await, node(&db, "b").await);
        let digest = crate::history::digest_of(b"c");
        a.put_component(digest, b"c".to_vec(), false, 0)
            .await
            .unwrap();
        a.renew(Duration::from_secs(60)).await.unwrap();
        b.renew(Duration::from_secs(60)).await.unwrap();
        (db, a, b)
    }

    fn commit(lease: u64) -> Commit {
        Commit {
            lease: Some(lease),
            ..events(vec![HistoryEvent::CustomStatusSet {
                pos: lease as u32,
                status: "1".into(),
            }])
        }
    }

    #[tokio::test]
    async fn one_node_at_a_time_holds_an_instance_and_a_node_that_lost_it_writes_nothing() {
        let (_db, a, b) = two_nodes().await;
        let id: crate::history::InstanceId = "i".parse().unwrap();
        create(&a, &id, "o", "1", 1).await;

        // The creating node holds it (epoch 1); the other is told who does.
        assert_eq!(
            b.claim(id.clone()).await.unwrap(),
            Claim::Elsewhere("a".into())
        );
        assert!(a.commit(id.clone(), commit(1), 2).await.unwrap().is_some());
        let fenced = b.commit(id.clone(), commit(1), 2).await;
        assert_eq!(fenced, Err(StoreError::Fenced(id.clone())));

        // Node a stops renewing: its lease runs out and b takes the instance over.
        a.renew(Duration::ZERO).await.unwrap();
        let taken = b.claim(id.clone()).await.unwrap();
        assert_eq!(taken, Claim::Held(2));
        let before = a.history(id.clone(), 0).await.unwrap().len();
        assert_eq!(
            a.commit(id.clone(), commit(1), 3).await,
            Err(StoreError::Fenced(id.clone()))
        );
        assert_eq!(a.history(id.clone(), 0).await.unwrap().len(), before);
        assert!(b.commit(id.clone(), commit(2), 3).await.unwrap().is_some());

        // Let go of, it goes to whoever claims next, with a new epoch.
        a.renew(Duration::from_secs(60)).await.unwrap();
        b.release(id.clone(), 2).await.unwrap();
        assert_eq!(a.claim(id.clone()).await.unwrap(), Claim::Held(3));
        assert_eq!(
            b.claim("nobody".parse().unwrap()).await.unwrap(),
            Claim::Missing
        );
    }

    #[tokio::test]
    async fn a_dead_nodes_instances_are_taken_over_and_a_restarted_node_takes_back_its_own() {
        let (_db, a, b) = two_nodes().await;
        for i in 0..3 {
            create(&a, &format!("a{i}").parse().unwrap(), "o", "1", 1).await;
        }
        create(&b, &"b0".parse().unwrap(), "o", "1", 1).await;
        assert!(
            b.claim_orphans(false, 10).await.unwrap().is_empty(),
            "a is alive"
        );
        let mine = a.claim_orphans(true, usize::MAX).await.unwrap();
        assert_eq!(mine.len(), 3, "a restarted takes back its own: {mine:?}");
        assert!(mine.iter().all(|(_, epoch)| *epoch == 2));

        a.renew(Duration::ZERO).await.unwrap();
        let mut taken = b.claim_orphans(false, 2).await.unwrap();
        assert_eq!(taken.len(), 2, "at most the batch");
        taken.extend(b.claim_orphans(false, 2).await.unwrap());
        let mut ids: Vec<String> = taken.iter().map(|(id, _)| id.to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["a0", "a1", "a2"]);
        assert!(b.claim_orphans(false, 10).await.unwrap().is_empty());
    }

    /// A commit by the holder (epoch 1) scheduling activities at `positions`, the first
    /// `run_here` of them claimed by the committing node.
    fn scheduling(positions: &[u32], run_here: usize) -> Commit {
        let mut commit = Commit {
            lease: Some(1),
            run_here,
            ..Commit::default()
        };
        for &pos in positions {
            commit.events.push(HistoryEvent::ActivityScheduled {
                pos,
                name: "a".into(),
                input: "1".into(),
                retry: None,
            });
            commit.activities.push(crate::store::ScheduledActivity {
                pos,
                name: "a".into(),
                input: "1".into(),
                retry: None,
            });
        }
        commit
    }

    #[tokio::test]
    async fn an_activity_runs_where_it_is_claimed_and_a_node_that_lost_its_claim_records_nothing() {
        let (db, a, b) = two_nodes().await;
        let id: crate::history::InstanceId = "i".parse().unwrap();
        create(&a, &id, "o", "1", 1).await;
        a.commit(id.clone(), scheduling(&[0, 1], 1), 2)
            .await
            .unwrap();

        // Position 1 was left for any node; position 0 is a's while a lives.
        let claimed = b.claim_activities(false, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|w| w.pos).collect::<Vec<_>>(), [1]);
        assert_eq!(claimed[0].orchestration, "o");
        assert_eq!(claimed[0].trace, None, "started with no trace context");
        assert!(b.claim_activities(false, 10).await.unwrap().is_empty());
        a.renew(Duration::ZERO).await.unwrap();
        let claimed = b.claim_activities(false, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|w| w.pos).collect::<Vec<_>>(), [0]);

        // a's late result for 0 is refused; b's counts, once.
        let before = a.history(id.clone(), 0).await.unwrap().len();
        assert_eq!(
            a.complete_activity(id.clone(), 0, Ok("1".into()), 3).await,
            Err(StoreError::Fenced(id.clone()))
        );
        assert_eq!(a.history(id.clone(), 0).await.unwrap().len(), before);
        use crate::store::CompleteOutcome::{Ignored, Recorded};
        assert_eq!(
            b.complete_activity(id.clone(), 0, Ok("1".into()), 3).await,
            Ok(Recorded)
        );
        assert_eq!(
            a.complete_activity(id.clone(), 0, Ok("1".into()), 3).await,
            Ok(Ignored)
        );

        // Restarted under its name, b claims back what it had claimed.
        let again = node(&db, "b").await;
        let mine = again.claim_activities(true, 10).await.unwrap();
        assert_eq!(mine.iter().map(|w| w.pos).collect::<Vec<_>>(), [1]);
    }

    #[tokio::test]
    async fn a_notice_reaches_the_node_it_is_sent_to() {
        let db = PgDatabase::new();
        db.store().await;
        let (a, b) = (node(&db, "a").await, node(&db, "b").await);
        let mut to_b = b.notices().expect("the notices, once");
        assert!(b.notices().is_none());
        let id: crate::history::InstanceId = "i".parse().unwrap();
        a.notify(Some("c"), Notice::Attend(id.clone()))
            .await
            .unwrap();
        a.notify(Some("b"), Notice::Attend(id.clone()))
            .await
            .unwrap();
        a.notify(None, Notice::Clock(7)).await.unwrap();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), to_b.recv())
                .await
                .expect("a notice within 10 s")
        };
        assert_eq!(next().await, Some(Notice::Attend(id)));
        assert_eq!(next().await, Some(Notice::Clock(7)));
    }

    /// Two nodes apply the operations of one entity at once, each to the oldest it sees: an
    /// operation sent in a transaction that commits late has the lower id, so one node reads
    /// the later operation and the other the earlier one, both on the same state. Only the
    /// first result stored counts; the other is applied again to the new state.
    #[tokio::test]
    async fn two_nodes_applying_one_entity_apply_each_operation_to_the_state_the_one_before_left() {
        use crate::store::{AppliedOp, EntityKey, EntityOp, EntityStore as _};
        let (db, a, b) = two_nodes().await;
        let counter = EntityKey {
            name: "counter".into(),
            key: "k".into(),
        };
        let (late, connection) =
            tokio_postgres::connect(&server().url(&db.name), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        late.batch_execute(
            "BEGIN; INSERT INTO entity_inbox (name, key, operation, input, sent_at)
             VALUES ('counter', 'k', 'add', '1', 1)",
        )
        .await
        .unwrap();
        let two = EntityOp {
            entity: counter.clone(),
            operation: "add".into(),
            input: "2".into(),
            reply: None,
        };
        a.signal_entity(two, 2).await.unwrap();
        let on_a = a.next_entity_op(counter.clone()).await.unwrap().unwrap();
        assert_eq!((on_a.input.as_str(), on_a.version), ("2", 0));
        late.batch_execute("COMMIT").await.unwrap();
        let on_b = b.next_entity_op(counter.clone()).await.unwrap().unwrap();
        assert_eq!((on_b.input.as_str(), on_b.version), ("1", 0));
        let done = |n: &str| AppliedOp::Done {
            state: Some(n.into()),
            output: n.into(),
        };
        b.finish_entity_op(counter.clone(), on_b.id, on_b.version, done("1"), 3)
            .await
            .unwrap();
        a.finish_entity_op(counter.clone(), on_a.id, on_a.version, done("2"), 4)
            .await
            .unwrap();
        let again = a.next_entity_op(counter.clone()).await.unwrap().unwrap();
        assert_eq!(
            (again.id, again.version, again.state.as_deref()),
            (on_a.id, 1, Some("1")),
            "the later operation waits, to apply to what the earlier one left"
        );
        a.finish_entity_op(counter.clone(), again.id, again.version, done("3"), 5)
            .await
            .unwrap();
        let log = a.entity_log(counter, 0, 10).await.unwrap();
        let applied: Vec<_> = log
            .iter()
            .map(|l| (l.input.as_str(), l.output.as_deref()))
            .collect();
        assert_eq!(applied, [("1", Some("1")), ("2", Some("3"))]);
    }
}
