//! The FUSE side: each request of the kernel, answered from the [`Model`].

use crate::model::{Kind, Model, Node};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// How long the kernel may keep an entry or attributes. Every change goes through this one
/// mount, so what the kernel caches stays right; a cut remounts, dropping the kernel's caches.
const TTL: Duration = Duration::from_secs(1);

pub struct PowerCutFs {
    pub model: Arc<Mutex<Model>>,
    /// The fsyncs held unanswered ([`Model::stall_next_fsync`]), answered `EIO` when the
    /// power is cut.
    pub stalled: Arc<Mutex<Vec<ReplyEmpty>>>,
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn attr(ino: u64, node: &Node) -> FileAttr {
    let (kind, nlink) = match node.kind {
        Kind::File { .. } => (FileType::RegularFile, 1),
        Kind::Dir { .. } => (FileType::Directory, 2),
    };
    let size = node.size();
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: node.mtime,
        mtime: node.mtime,
        ctime: node.mtime,
        crtime: node.mtime,
        kind,
        perm: node.perm,
        nlink,
        uid: node.uid,
        gid: node.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl PowerCutFs {
    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, model: &Model, ino: u64, reply: ReplyEntry) {
        match model.node(ino) {
            Ok(node) => reply.entry(&TTL, &attr(ino, node), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let model = self.model();
        match model.lookup(parent.0, name) {
            Ok(ino) => self.entry(&model, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.model().node(ino.0) {
            Ok(node) => reply.attr(&TTL, &attr(ino.0, node)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut model = self.model();
        let ino = ino.0;
        let done = (|| {
            if let Some(size) = size {
                model.truncate(ino, size)?;
            }
            if let Some(mode) = mode {
                model.set_perm(ino, (mode & 0o7777) as u16)?;
            }
            if uid.is_some() || gid.is_some() {
                model.set_owner(ino, uid, gid)?;
            }
            Ok(())
        })();
        match done.and_then(|()| model.node(ino)) {
            Ok(node) => reply.attr(&TTL, &attr(ino, node)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut model = self.model();
        let perm = (mode & !umask & 0o7777) as u16;
        match model.create(parent.0, name, false, perm, (req.uid(), req.gid())) {
            Ok(ino) => self.entry(&model, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut model = self.model();
        let perm = (mode & !umask & 0o7777) as u16;
        match model.create(parent.0, name, true, perm, (req.uid(), req.gid())) {
            Ok(ino) => self.entry(&model, ino, reply),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.model().remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.model().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut model = self.model();
        if flags.contains(RenameFlags::RENAME_NOREPLACE)
            && model.lookup(newparent.0, newname).is_ok()
        {
            return reply.error(Errno::EEXIST);
        }
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(Errno::EINVAL);
        }
        match model.rename(parent.0, name, newparent.0, newname) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let mut model = self.model();
        if flags.0 & libc::O_TRUNC != 0
            && let Err(e) = model.truncate(ino.0, 0)
        {
            return reply.error(errno(e));
        }
        match model.node(ino.0) {
            Ok(node) if node.is_dir() => reply.error(Errno::EISDIR),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut model = self.model();
        let perm = (mode & !umask & 0o7777) as u16;
        let ino = match model.create(parent.0, name, false, perm, (req.uid(), req.gid())) {
            Ok(ino) => ino,
            Err(libc::EEXIST) if flags & libc::O_EXCL == 0 => match model.lookup(parent.0, name) {
                Ok(ino) => ino,
                Err(e) => return reply.error(errno(e)),
            },
            Err(e) => return reply.error(errno(e)),
        };
        if flags & libc::O_TRUNC != 0
            && let Err(e) = model.truncate(ino, 0)
        {
            return reply.error(errno(e));
        }
        match model.node(ino) {
            Ok(node) => reply.created(
                &TTL,
                &attr(ino, node),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model().read(ino.0, offset, size) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut model = self.model();
        if model.take_stall() {
            self.stalled
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(reply);
            return;
        }
        match model.fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().node(ino.0) {
            Ok(node) if node.is_dir() => reply.opened(FileHandle(0), FopenFlags::empty()),
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = match self.model().list(ino.0) {
            Ok(list) => list,
            Err(e) => return reply.error(errno(e)),
        };
        let dots = [
            (".".into(), ino.0, true),
            ("..".into(), model_parent(ino.0), true),
        ];
        for (i, (name, child, is_dir)) in dots.into_iter().chain(list).enumerate() {
            if (i as u64) < offset {
                continue;
            }
            let kind = if is_dir {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.model().fsync_dir(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut model = self.model();
        let grow = match model.node(ino.0) {
            Ok(node) => node.size() < offset + length,
            Err(e) => return reply.error(errno(e)),
        };
        let done = if grow {
            model.truncate(ino.0, offset + length)
        } else {
            Ok(())
        };
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// `..` of a directory, for `readdir`: the kernel does not use it (it keeps its own tree), so
/// the root stands in.
fn model_parent(_ino: u64) -> u64 {
    crate::model::ROOT
}
