//! The only `unsafe` code of capture: the SysV shared-memory segment that MIT-SHM `GetImage`
//! writes into, and `poll(2)` on the X connection's socket.
//!
//! Life of a segment: [`ShmSegment::create`] makes a private segment (`IPC_PRIVATE`, mode 0600:
//! only processes of our uid can attach it) and maps it read-only into this process; the caller
//! asks the X server to attach it (`ShmAttach`) and checks that request, then calls
//! [`ShmSegment::mark_removed`] (`IPC_RMID`) at once, so the kernel frees the segment when the
//! last of us and the server detaches, even if this process crashes. Dropping the value unmaps
//! it (and removes it, if that has not happened yet).

use std::io;
use std::ptr::NonNull;

/// A mapped, private SysV shared-memory segment. Read-only on our side; the X server writes it.
#[derive(Debug)]
pub(crate) struct ShmSegment {
    id: libc::c_int,
    addr: NonNull<u8>,
    len: usize,
    removed: bool,
}

// SAFETY: the mapping is plain memory owned by this value; nothing in it is tied to a thread.
unsafe impl Send for ShmSegment {}

impl ShmSegment {
    /// Creates a private segment of `len` bytes (mode 0600) and maps it read-only.
    pub(crate) fn create(len: usize) -> io::Result<Self> {
        // SAFETY: shmget has no memory-safety preconditions; the result is checked.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, len, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `id` is a segment we just created; a null address lets the kernel choose
        // where to map it. The result is checked for the (void*)-1 error value below.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
        if addr as isize == -1 {
            let err = io::Error::last_os_error();
            // SAFETY: removing our own, unattached segment.
            unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
            return Err(err);
        }
        Ok(ShmSegment {
            id,
            addr: NonNull::new(addr.cast()).expect("shmat returned null"),
            len,
            removed: false,
        })
    }

    /// The kernel id the X server attaches by.
    pub(crate) fn id(&self) -> u32 {
        self.id as u32
    }

    /// Marks the segment for removal (`IPC_RMID`): it lives on only while attached.
    /// Call it as soon as the X server has attached it.
    pub(crate) fn mark_removed(&mut self) -> io::Result<()> {
        if self.removed {
            return Ok(());
        }
        // SAFETY: `id` is our segment; IPC_RMID takes no buffer.
        if unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        self.removed = true;
        Ok(())
    }

    /// Bytes `range` of the segment.
    ///
    /// The X server writes a range of the segment only while it executes a `ShmGetImage` for
    /// it that we sent. Callers borrow a range only after that request's reply has arrived and
    /// drop the borrow before sending the next request that targets it, so the bytes do not
    /// change while borrowed (other ranges may be written meanwhile; they are not borrowed).
    ///
    /// Panics if `range` is out of bounds.
    pub(crate) fn bytes(&self, range: std::ops::Range<usize>) -> &[u8] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range out of segment"
        );
        // SAFETY: `addr` maps `len` readable bytes for as long as `self` lives (detached only in
        // Drop) and `range` lies inside them; see above for why they are stable while borrowed.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr().add(range.start), range.len()) }
    }
}

impl Drop for ShmSegment {
    fn drop(&mut self) {
        if let Err(e) = self.mark_removed() {
            tracing::warn!(error = %e, shmid = self.id, "IPC_RMID of the capture segment failed");
        }
        // SAFETY: `addr` came from shmat and is detached exactly once, here; no borrow from
        // `bytes()` can outlive `self`.
        if unsafe { libc::shmdt(self.addr.as_ptr().cast()) } < 0 {
            let e = io::Error::last_os_error();
            tracing::warn!(error = %e, shmid = self.id, "shmdt of the capture segment failed");
        }
    }
}

/// Waits until `fd` is readable (or hung up) or `timeout` passes. An interrupted wait
/// (`EINTR`) returns early, like a spurious wake-up; callers loop anyway.
pub(crate) fn wait_readable(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Round up so that a sub-millisecond remainder waits instead of spinning.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call; the fd is borrowed, so it
    // stays open.
    if unsafe { libc::poll(&mut pfd, 1, ms) } < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_is_private_and_removed_after_mark() {
        let mut seg = ShmSegment::create(4096).unwrap();
        assert_eq!(seg.bytes(0..4096).len(), 4096);
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT writes into `ds`, a valid shmid_ds.
        assert_eq!(unsafe { libc::shmctl(seg.id, libc::IPC_STAT, &mut ds) }, 0);
        assert_eq!(ds.shm_perm.mode & 0o777, 0o600);
        seg.mark_removed().unwrap();
        // After IPC_RMID the segment lives on only through our attachment.
        assert_eq!(seg.bytes(0..1), [0]);
    }
}
