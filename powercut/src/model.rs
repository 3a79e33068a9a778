//! The file system's state, without FUSE: every node as the running programs see it (the page
//! cache, so to speak) and as the disk holds it. A file's writes and truncations wait in a
//! list until the file is fsynced; a directory's entries reach the disk when the directory is
//! fsynced. A power cut keeps the disk's side only, optionally with a prefix of the writes
//! still waiting (a torn write).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// The inode number of the root directory (FUSE's).
pub const ROOT: u64 = 1;

/// A change to a file that has not reached the disk.
#[derive(Debug, Clone)]
pub enum Pending {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Write { data, .. } => data.len(),
            Pending::Truncate(_) => 0,
        }
    }

    fn apply(&self, file: &mut Vec<u8>) {
        match self {
            Pending::Write { offset, data } => write_at(file, *offset, data),
            Pending::Truncate(size) => file.resize(*size as usize, 0),
        }
    }
}

fn write_at(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if file.len() < end {
        file.resize(end, 0);
    }
    file[start..end].copy_from_slice(data);
}

#[derive(Debug, Clone)]
pub enum Kind {
    File {
        /// What programs read.
        data: Vec<u8>,
        /// What the disk holds.
        durable: Vec<u8>,
        /// The changes from `durable` to `data`, in order.
        pending: Vec<Pending>,
        pending_bytes: usize,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
    },
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
}

impl Node {
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File { data, .. } => data.len() as u64,
            Kind::Dir { entries, .. } => entries.len() as u64,
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// What the file system did, for a test to report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// fsyncs of files that reached the disk.
    pub fsyncs: u64,
    /// fsyncs of directories.
    pub dir_fsyncs: u64,
    /// fsyncs answered `EIO` on request (their writes were dropped, as Linux drops them).
    pub failed_fsyncs: u64,
    /// Writes and truncations the power cuts threw away.
    pub discarded_changes: u64,
    /// Bytes of writes the power cuts threw away.
    pub discarded_bytes: u64,
    /// Writes that reached the disk torn (a prefix only) at a cut.
    pub torn_writes: u64,
}

impl std::ops::Add for Stats {
    type Output = Stats;

    fn add(self, o: Stats) -> Stats {
        Stats {
            fsyncs: self.fsyncs + o.fsyncs,
            dir_fsyncs: self.dir_fsyncs + o.dir_fsyncs,
            failed_fsyncs: self.failed_fsyncs + o.failed_fsyncs,
            discarded_changes: self.discarded_changes + o.discarded_changes,
            discarded_bytes: self.discarded_bytes + o.discarded_bytes,
            torn_writes: self.torn_writes + o.torn_writes,
        }
    }
}

/// How a cut treats the writes that have not reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// All are lost.
    Clean,
    /// Each file keeps a prefix of its waiting changes, the last one of them possibly cut
    /// within its bytes (the disk wrote them in order and lost power mid-way); the prefix
    /// lengths come from this seed.
    Torn(u64),
}

/// The whole tree.
#[derive(Debug)]
pub struct Model {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// How many of the next file fsyncs fail.
    fail_fsyncs: u32,
    /// Whether the next file fsync is held unanswered until the power is cut.
    stall_fsync: bool,
    /// After a cut's first step no change is accepted: the power is gone.
    frozen: bool,
    pub stats: Stats,
}

/// An errno.
pub type Errno = i32;

/// Above this many bytes waiting, a file's waiting changes are folded into one (a tear then
/// keeps a prefix of that one): memory stays bounded for a file that is never fsynced.
const MAX_PENDING_BYTES: usize = 32 << 20;

impl Model {
    /// A tree with an empty root.
    pub fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, dir_node(0o755, 0, 0));
        Self {
            nodes,
            next_ino: ROOT + 1,
            fail_fsyncs: 0,
            stall_fsync: false,
            frozen: false,
            stats: Stats::default(),
        }
    }

    /// The tree in `dir` on the real disk, all of it durable.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let mut model = Self::new();
        model.load_into(ROOT, dir)?;
        Ok(model)
    }

    fn load_into(&mut self, parent: u64, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let perm =
                (std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777) as u16;
            let ino = if meta.is_dir() {
                let ino = self.add(dir_node(perm, 0, 0));
                self.load_into(ino, &entry.path())?;
                ino
            } else if meta.is_file() {
                let data = std::fs::read(entry.path())?;
                self.add(file_node(data, perm, 0, 0))
            } else {
                continue;
            };
            let Some(Kind::Dir { entries, durable }) =
                self.nodes.get_mut(&parent).map(|n| &mut n.kind)
            else {
                unreachable!("a parent is a directory");
            };
            entries.insert(entry.file_name(), ino);
            durable.insert(entry.file_name(), ino);
        }
        Ok(())
    }

    /// Writes what the disk holds into `dir` (emptied first).
    pub fn store(&self, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        self.store_dir(ROOT, dir)
    }

    fn store_dir(&self, ino: u64, dir: &Path) -> io::Result<()> {
        let Kind::Dir { durable, .. } = &self.nodes[&ino].kind else {
            unreachable!("a directory");
        };
        for (name, child) in durable {
            let node = &self.nodes[child];
            let path = dir.join(name);
            match &node.kind {
                Kind::File { durable, .. } => std::fs::write(&path, durable)?,
                Kind::Dir { .. } => {
                    std::fs::create_dir(&path)?;
                    self.store_dir(*child, &path)?;
                }
            }
            let perm = std::fs::Permissions::from_mode(u32::from(node.perm));
            std::fs::set_permissions(&path, perm)?;
        }
        Ok(())
    }

    fn add(&mut self, node: Node) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    pub fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        if self.frozen {
            return Err(libc::EIO);
        }
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn entries(&self, dir: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match &self.node(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            Kind::File { .. } => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match &mut self.node_mut(dir)?.kind {
            Kind::Dir { entries, .. } => Ok(entries),
            Kind::File { .. } => Err(libc::ENOTDIR),
        }
    }

    pub fn lookup(&self, dir: u64, name: &OsStr) -> Result<u64, Errno> {
        self.entries(dir)?.get(name).copied().ok_or(libc::ENOENT)
    }

    /// The entries of a directory, `.` and `..` left out.
    pub fn list(&self, dir: u64) -> Result<Vec<(OsString, u64, bool)>, Errno> {
        Ok(self
            .entries(dir)?
            .iter()
            .map(|(name, &ino)| (name.clone(), ino, self.nodes[&ino].is_dir()))
            .collect())
    }

    /// Creates a file (or a directory) named `name` in `dir`.
    pub fn create(
        &mut self,
        dir: u64,
        name: &OsStr,
        is_dir: bool,
        perm: u16,
        owner: (u32, u32),
    ) -> Result<u64, Errno> {
        if self.entries_mut(dir)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let node = if is_dir {
            dir_node(perm, owner.0, owner.1)
        } else {
            file_node(Vec::new(), perm, owner.0, owner.1)
        };
        // A new file's (empty) content is on the disk as soon as its name is.
        let ino = self.add(node);
        self.entries_mut(dir)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Removes `name` from `dir` (a directory only if `dir_wanted`, and only when empty).
    pub fn remove(&mut self, dir: u64, name: &OsStr, dir_wanted: bool) -> Result<(), Errno> {
        let ino = self.lookup(dir, name)?;
        let node = self.node(ino)?;
        match (&node.kind, dir_wanted) {
            (Kind::Dir { entries, .. }, true) if !entries.is_empty() => {
                return Err(libc::ENOTEMPTY);
            }
            (Kind::Dir { .. }, false) => return Err(libc::EISDIR),
            (Kind::File { .. }, true) => return Err(libc::ENOTDIR),
            _ => {}
        }
        // The node stays: the disk may still name it, until `dir` is fsynced.
        self.entries_mut(dir)?.remove(name);
        Ok(())
    }

    pub fn rename(
        &mut self,
        from: u64,
        name: &OsStr,
        to: u64,
        new_name: &OsStr,
    ) -> Result<(), Errno> {
        let ino = self.lookup(from, name)?;
        if let Ok(old) = self.lookup(to, new_name) {
            if old == ino {
                return Ok(());
            }
            let replaced = self.node(old)?;
            if let Kind::Dir { entries, .. } = &replaced.kind
                && !entries.is_empty()
            {
                return Err(libc::ENOTEMPTY);
            }
        }
        self.entries_mut(to)?; // a directory, and writable
        self.entries_mut(from)?.remove(name);
        self.entries_mut(to)?.insert(new_name.to_owned(), ino);
        Ok(())
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        match &self.node(ino)?.kind {
            Kind::File { data, .. } => {
                let start = (offset as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                Ok(&data[start..end])
            }
            Kind::Dir { .. } => Err(libc::EISDIR),
        }
    }

    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        self.change(
            ino,
            Pending::Write {
                offset,
                data: bytes.to_vec(),
            },
        )
    }

    pub fn truncate(&mut self, ino: u64, size: u64) -> Result<(), Errno> {
        self.change(ino, Pending::Truncate(size))
    }

    fn change(&mut self, ino: u64, change: Pending) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        let Kind::File {
            data,
            pending,
            pending_bytes,
            ..
        } = &mut node.kind
        else {
            return Err(libc::EISDIR);
        };
        change.apply(data);
        *pending_bytes += change.len();
        pending.push(change);
        if *pending_bytes > MAX_PENDING_BYTES {
            // Fold: the disk's content plus everything waiting, as one write.
            let folded = vec![
                Pending::Truncate(0),
                Pending::Write {
                    offset: 0,
                    data: data.clone(),
                },
            ];
            *pending_bytes = data.len();
            *pending = folded;
        }
        Ok(())
    }

    pub fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Errno> {
        self.node_mut(ino)?.perm = perm;
        Ok(())
    }

    pub fn set_owner(&mut self, ino: u64, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        node.uid = uid.unwrap_or(node.uid);
        node.gid = gid.unwrap_or(node.gid);
        Ok(())
    }

    /// fsync of a file: its waiting changes reach the disk, or, if a failure was asked for,
    /// are dropped (as Linux drops dirty pages whose write-back failed) and `EIO` is answered.
    pub fn fsync(&mut self, ino: u64) -> Result<(), Errno> {
        let fail = self.fail_fsyncs > 0;
        let node = self.node_mut(ino)?;
        let Kind::File {
            durable,
            pending,
            pending_bytes,
            ..
        } = &mut node.kind
        else {
            return self.fsync_dir(ino);
        };
        if fail {
            pending.clear();
            *pending_bytes = 0;
            self.fail_fsyncs -= 1;
            self.stats.failed_fsyncs += 1;
            return Err(libc::EIO);
        }
        for change in pending.drain(..) {
            change.apply(durable);
        }
        *pending_bytes = 0;
        self.stats.fsyncs += 1;
        Ok(())
    }

    /// fsync of a directory: its entries, as they are now, reach the disk.
    pub fn fsync_dir(&mut self, ino: u64) -> Result<(), Errno> {
        let node = self.node_mut(ino)?;
        if let Kind::Dir { entries, durable } = &mut node.kind {
            *durable = entries.clone();
        }
        self.stats.dir_fsyncs += 1;
        Ok(())
    }

    /// The next `n` file fsyncs fail with `EIO`.
    pub fn fail_fsyncs(&mut self, n: u32) {
        self.fail_fsyncs = n;
    }

    /// The next file fsync is held unanswered (its writes still waiting) until the power is
    /// cut: a cut then lands while a program waits for it, its writes not yet on the disk.
    pub fn stall_next_fsync(&mut self) {
        self.stall_fsync = true;
    }

    /// Whether this fsync is the one to hold (then the next is not).
    pub fn take_stall(&mut self) -> bool {
        std::mem::take(&mut self.stall_fsync)
    }

    /// The power is gone: from now on every change fails with `EIO`.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Drops everything that did not reach the disk (keeping a prefix of it with
    /// [`Cut::Torn`]); the tree is then what the disk holds, and accepts changes again.
    pub fn cut(&mut self, how: Cut) {
        let mut seed = match how {
            Cut::Clean => 0,
            Cut::Torn(seed) => seed.max(1),
        };
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let node = self.nodes.get_mut(&ino).expect("listed");
            match &mut node.kind {
                Kind::File {
                    data,
                    durable,
                    pending,
                    pending_bytes,
                } => {
                    let mut kept = 0;
                    if seed != 0 && !pending.is_empty() {
                        // How many changes reach the disk whole, then how much of the next.
                        let whole = (next(&mut seed) % (pending.len() as u64 + 1)) as usize;
                        for change in &pending[..whole] {
                            change.apply(durable);
                        }
                        kept = whole;
                        if let Some(Pending::Write {
                            offset,
                            data: bytes,
                        }) = pending.get(whole)
                            && !bytes.is_empty()
                        {
                            let prefix = (next(&mut seed) % bytes.len() as u64) as usize;
                            if prefix > 0 {
                                write_at(durable, *offset, &bytes[..prefix]);
                                self.stats.torn_writes += 1;
                            }
                        }
                    }
                    for change in &pending[kept..] {
                        self.stats.discarded_changes += 1;
                        self.stats.discarded_bytes += change.len() as u64;
                    }
                    pending.clear();
                    *pending_bytes = 0;
                    *data = durable.clone();
                }
                Kind::Dir { entries, durable } => *entries = durable.clone(),
            }
        }
        self.fail_fsyncs = 0;
        self.stall_fsync = false;
        self.frozen = false;
    }
}

/// xorshift64*.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn dir_node(perm: u16, uid: u32, gid: u32) -> Node {
    Node {
        kind: Kind::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        },
        perm,
        uid,
        gid,
        mtime: SystemTime::UNIX_EPOCH,
    }
}

fn file_node(data: Vec<u8>, perm: u16, uid: u32, gid: u32) -> Node {
    Node {
        kind: Kind::File {
            durable: data.clone(),
            data,
            pending: Vec::new(),
            pending_bytes: 0,
        },
        perm,
        uid,
        gid,
        mtime: SystemTime::UNIX_EPOCH,
    }
}

use std::os::unix::fs::PermissionsExt as _;

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    fn content(m: &Model, ino: u64) -> Vec<u8> {
        m.read(ino, 0, u32::MAX).unwrap().to_vec()
    }

    #[test]
    fn a_write_without_fsync_is_gone_after_a_cut_and_one_with_fsync_stays() {
        let mut m = Model::new();
        let f = m.create(ROOT, name("f"), false, 0o644, (0, 0)).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.write(f, 0, b"kept").unwrap();
        m.fsync(f).unwrap();
        m.write(f, 4, b" lost").unwrap();
        assert_eq!(content(&m, f), b"kept lost");
        m.cut(Cut::Clean);
        assert_eq!(content(&m, f), b"kept");
        assert_eq!(m.stats.discarded_changes, 1);
    }

    #[test]
    fn a_create_or_rename_is_lost_until_its_directory_is_fsynced() {
        let mut m = Model::new();
        let f = m.create(ROOT, name("new"), false, 0o644, (0, 0)).unwrap();
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        m.cut(Cut::Clean);
        assert_eq!(m.lookup(ROOT, name("new")), Err(libc::ENOENT));

        let f = m.create(ROOT, name("a"), false, 0o644, (0, 0)).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.rename(ROOT, name("a"), ROOT, name("b")).unwrap();
        m.cut(Cut::Clean);
        assert_eq!(m.lookup(ROOT, name("a")), Ok(f));
        assert_eq!(m.lookup(ROOT, name("b")), Err(libc::ENOENT));

        m.remove(ROOT, name("a"), false).unwrap();
        m.cut(Cut::Clean);
        assert_eq!(
            m.lookup(ROOT, name("a")),
            Ok(f),
            "an unlink without fsync is undone"
        );
    }

    #[test]
    fn a_failed_fsync_drops_its_writes_and_a_second_fsync_does_not_bring_them_back() {
        let mut m = Model::new();
        let f = m.create(ROOT, name("f"), false, 0o644, (0, 0)).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.write(f, 0, b"data").unwrap();
        m.fail_fsyncs(1);
        assert_eq!(m.fsync(f), Err(libc::EIO));
        // The page cache still shows it, and the retry "succeeds": the fsyncgate trap.
        assert_eq!(content(&m, f), b"data");
        assert_eq!(m.fsync(f), Ok(()));
        m.cut(Cut::Clean);
        assert_eq!(content(&m, f), b"");
    }

    #[test]
    fn a_torn_cut_keeps_a_prefix_of_the_waiting_writes_in_order() {
        for seed in 1..200 {
            let mut m = Model::new();
            let f = m.create(ROOT, name("f"), false, 0o644, (0, 0)).unwrap();
            m.fsync_dir(ROOT).unwrap();
            m.write(f, 0, b"aaaa").unwrap();
            m.write(f, 4, b"bbbb").unwrap();
            m.cut(Cut::Torn(seed));
            let got = content(&m, f);
            let all = b"aaaabbbb";
            assert!(
                all.starts_with(&got),
                "seed {seed}: {got:?} is not a prefix"
            );
        }
    }

    #[test]
    fn after_a_cut_nothing_is_accepted_until_the_tree_is_rebuilt() {
        let mut m = Model::new();
        let f = m.create(ROOT, name("f"), false, 0o644, (0, 0)).unwrap();
        m.freeze();
        assert_eq!(m.write(f, 0, b"late"), Err(libc::EIO));
        assert_eq!(m.fsync(f), Err(libc::EIO));
        m.cut(Cut::Clean);
        assert_eq!(m.lookup(ROOT, name("f")), Err(libc::ENOENT));
    }

    #[test]
    fn store_then_load_gives_the_disk_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Model::new();
        let d = m.create(ROOT, name("d"), true, 0o755, (0, 0)).unwrap();
        let f = m.create(d, name("f"), false, 0o600, (0, 0)).unwrap();
        m.write(f, 0, b"synced").unwrap();
        m.fsync(f).unwrap();
        m.fsync_dir(d).unwrap();
        m.fsync_dir(ROOT).unwrap();
        m.write(f, 0, b"volatile").unwrap();
        m.store(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/f")).unwrap(), b"synced");
        let back = Model::load(dir.path()).unwrap();
        let d = back.lookup(ROOT, name("d")).unwrap();
        let f = back.lookup(d, name("f")).unwrap();
        assert_eq!(back.node(f).unwrap().perm, 0o600);
        assert_eq!(content(&back, f), b"synced");
    }
}
