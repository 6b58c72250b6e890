//! The only `unsafe` code of the UDP driver: small safe wrappers over the libc calls that
//! neither std nor socket2 offer — `sendmmsg` (two iovecs per datagram: headers and body,
//! the body never copied), `recvmmsg` (into slots of their own buffers, with truncation
//! reported; a datagram can be taken with its buffer, not copied),
//! `ppoll` (nanosecond timeouts), `eventfd` (the driver's wake-up), `SO_RCVBUFFORCE` /
//! `SO_SNDBUFFORCE`, the BPF filter that drops a member's own multicast loopback copies
//! (`SO_ATTACH_FILTER`), and the interface lookup by address (`getifaddrs`,
//! `if_nametoindex`). Linux only (sendmmsg / recvmmsg / eventfd / socket filters).
//!
//! Tested by the unit tests below on loopback (a batch sent with `SendBatch` arrives through
//! `RecvBatch` intact, in order and with its source address, IPv4 and IPv6; a datagram is
//! taken with its slot's own bytes and the slot refilled; oversize
//! datagrams are flagged; `poll` times out and sees
//! the waker; the filter drops exactly the datagrams from its source, IPv4 and IPv6;
//! `interface_index` finds `lo`) and through the driver tests in `stack/tests/udp.rs`.
#![allow(unsafe_code)]

use bytes::{Bytes, BytesMut};
use socket2::SockAddr;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::time::Duration;

fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers, for which all-zero
    // bytes are a valid value (null pointers, zero lengths).
    unsafe { core::mem::zeroed() }
}

/// Scratch space for `sendmmsg`: one header and two iovecs per datagram, reused per call.
pub struct SendBatch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<[libc::iovec; 2]>,
    cap: usize,
}

// SAFETY: the raw pointers in `hdrs` and `iovs` are written afresh by each `send` from the
// datagrams it is given and read by the kernel only during that call; no thread shares them,
// so the batch may move to another thread (an inline member is created on one thread and
// run on another).
unsafe impl Send for SendBatch {}

impl SendBatch {
    pub fn new(cap: usize) -> SendBatch {
        let cap = cap.clamp(1, libc::UIO_MAXIOV as usize);
        SendBatch { hdrs: Vec::with_capacity(cap), iovs: Vec::with_capacity(cap), cap }
    }

    /// Sends up to `cap` datagrams `(destination, head, body)` in one `sendmmsg`.
    /// Returns how many the kernel took (at least one), or the error of the first one.
    pub fn send<'a>(
        &mut self,
        fd: BorrowedFd<'_>,
        msgs: impl IntoIterator<Item = (&'a SockAddr, &'a [u8], &'a [u8])>,
    ) -> io::Result<usize> {
        self.hdrs.clear();
        self.iovs.clear();
        for (addr, head, body) in msgs.into_iter().take(self.cap) {
            self.iovs.push([
                libc::iovec { iov_base: head.as_ptr() as *mut libc::c_void, iov_len: head.len() },
                libc::iovec { iov_base: body.as_ptr() as *mut libc::c_void, iov_len: body.len() },
            ]);
            let mut h = zeroed_mmsghdr();
            h.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = addr.len();
            h.msg_hdr.msg_iovlen = if body.is_empty() { 1 } else { 2 };
            self.hdrs.push(h);
        }
        if self.hdrs.is_empty() {
            return Ok(0);
        }
        // Both vectors are complete: no push can move them any more.
        for (h, iov) in self.hdrs.iter_mut().zip(self.iovs.iter_mut()) {
            h.msg_hdr.msg_iov = iov.as_mut_ptr();
        }
        let n = loop {
            // SAFETY: `hdrs[..len]` are initialised headers whose `msg_name` points to a live
            // `SockAddr` of `msg_namelen` bytes and whose `msg_iov` points to `msg_iovlen`
            // iovecs in `iovs`, which describe live slices borrowed for `'a`; sendmmsg only
            // reads them (and writes `msg_len`), and nothing is kept past the call.
            let r = unsafe {
                libc::sendmmsg(fd.as_raw_fd(), self.hdrs.as_mut_ptr(), self.hdrs.len() as _, libc::MSG_DONTWAIT as _)
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                self.hdrs.clear();
                return Err(e);
            }
        };
        self.hdrs.clear();
        self.iovs.clear();
        Ok(n)
    }
}

/// Receive slots for `recvmmsg`: `cap` slots of `slot` bytes, each a buffer of its own, and
/// one source address per slot. A datagram is read in place (`datagram`) or taken with its
/// slot's buffer (`take`: no copy; the slot gets a fresh buffer at the next `recv`).
pub struct RecvBatch {
    /// Each with at least `slot` bytes of capacity and length 0; the kernel fills them.
    slots: Vec<BytesMut>,
    slot: usize,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    got: usize,
}

fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: `sockaddr_storage` is a plain C struct of integers; all-zero bytes are a valid
    // value (family AF_UNSPEC).
    unsafe { core::mem::zeroed() }
}

/// The address the kernel wrote into `ss` (`len` bytes), if it is IPv4 or IPv6. The IPv6
/// flow label is left out (it is no part of who sent the datagram).
fn socket_addr(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len >= core::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: `sockaddr_storage` is at least as large and as aligned as any socket
            // address type, and its family (with a long enough length) says it holds a
            // `sockaddr_in`, which the kernel wrote in full.
            let sin = unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len >= core::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a `sockaddr_in6`.
            let sin6 = unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(ip, u16::from_be(sin6.sin6_port), 0, sin6.sin6_scope_id)))
        }
        _ => None,
    }
}

// SAFETY: the raw pointers in `hdrs` and `iovs` point into `slots` and `names`, heap
// buffers this batch owns, which do not move when the batch does; no thread shares them.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(cap: usize, slot: usize) -> RecvBatch {
        let cap = cap.clamp(1, libc::UIO_MAXIOV as usize);
        let slot = slot.max(1);
        RecvBatch {
            slots: (0..cap).map(|_| BytesMut::with_capacity(slot)).collect(),
            slot,
            hdrs: (0..cap).map(|_| zeroed_mmsghdr()).collect(),
            iovs: Vec::with_capacity(cap),
            names: (0..cap).map(|_| zeroed_storage()).collect(),
            got: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Bytes a slot holds (a longer datagram is truncated).
    pub fn slot_len(&self) -> usize {
        self.slot
    }

    /// One `recvmmsg` without waiting; returns how many datagrams arrived (at least one), or
    /// `WouldBlock` when none was there.
    pub fn recv(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        self.got = 0;
        self.iovs.clear();
        for s in self.slots.iter_mut() {
            if s.capacity() < self.slot {
                *s = BytesMut::with_capacity(self.slot); // its last buffer was taken
            }
            self.iovs.push(libc::iovec { iov_base: s.as_mut_ptr() as *mut libc::c_void, iov_len: self.slot });
        }
        for ((h, iov), name) in self.hdrs.iter_mut().zip(self.iovs.iter_mut()).zip(self.names.iter_mut()) {
            *h = zeroed_mmsghdr();
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_name = name as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_hdr.msg_namelen = core::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        let n = loop {
            // SAFETY: every header points to one iovec in `iovs` describing the first `slot`
            // bytes of the capacity of its own buffer in `slots`, and to its own
            // `sockaddr_storage` in `names` with `msg_namelen` its size, all alive and
            // exclusively borrowed through `&mut self` for the call; no control buffer is
            // given. The kernel writes at most `iov_len` bytes per slot, at most
            // `msg_namelen` bytes of source address, and `msg_len` / `msg_namelen` / `msg_flags`.
            let r = unsafe {
                libc::recvmmsg(
                    fd.as_raw_fd(),
                    self.hdrs.as_mut_ptr(),
                    self.hdrs.len() as _,
                    libc::MSG_DONTWAIT as _,
                    ptr::null_mut(),
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        self.got = n.min(self.hdrs.len());
        Ok(self.got)
    }

    /// The `i`-th datagram of the last `recv`, and whether it was longer than a slot (then
    /// only its first `slot` bytes are here); `None` past the last one, or once taken.
    pub fn datagram(&self, i: usize) -> Option<(&[u8], bool)> {
        if i >= self.got {
            return None;
        }
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.slot);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        if self.slots[i].capacity() < len {
            return None; // taken
        }
        // SAFETY: the last `recv` had the kernel write `msg_len` bytes (at most `slot`, the
        // iovec's length) at the start of this slot's buffer, whose capacity is at least
        // `slot`; nothing wrote to it since (`&self`).
        let data = unsafe { core::slice::from_raw_parts(self.slots[i].as_ptr(), len) };
        Some((data, truncated))
    }

    /// The `i`-th datagram of the last `recv` in its slot's own buffer, without a copy (the
    /// slot gets a fresh buffer at the next `recv`): for a large datagram, which would pin
    /// little of the buffer's memory for nothing. `None` past the last one, or if taken.
    pub fn take(&mut self, i: usize) -> Option<Bytes> {
        let len = self.datagram(i)?.0.len();
        let mut b = core::mem::take(&mut self.slots[i]);
        // SAFETY: the kernel initialized the first `len` bytes of this buffer in the last
        // `recv` (see `datagram`), within its capacity.
        unsafe { b.set_len(len) };
        Some(b.freeze())
    }

    /// Where the `i`-th datagram of the last `recv` came from (`None` past the last one, or
    /// for an address family other than IPv4 / IPv6).
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        if i >= self.got {
            return None;
        }
        socket_addr(&self.names[i], self.hdrs[i].msg_hdr.msg_namelen)
    }
}

/// `ppoll` on `fds`, waiting at most `timeout` (forever if `None`). Returns how many fds are
/// ready; 0 on timeout or when a signal interrupted the wait.
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> io::Result<usize> {
    let ts = timeout
        .map(|d| libc::timespec { tv_sec: d.as_secs().min(i64::MAX as u64 / 2) as _, tv_nsec: d.subsec_nanos() as _ });
    let tsp = ts.as_ref().map_or(ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfds; `tsp` is
    // null or points to a timespec alive for the call; no signal mask is passed.
    let r = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, tsp, ptr::null()) };
    if r >= 0 {
        return Ok(r as usize);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) }
}

/// The driver's wake-up: a nonblocking eventfd. Any thread may `wake`; the driver `drain`s.
#[derive(Debug)]
pub struct Waker {
    fd: File,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; on success it returns a new descriptor that we
        // own from here on (wrapped at once), on failure -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd: File::from(owned) })
    }

    /// Makes the fd readable (the counter saturates long before it could block).
    pub fn wake(&self) {
        let _ = (&self.fd).write(&1u64.to_ne_bytes());
    }

    /// Resets the fd to not readable.
    pub fn drain(&self) {
        let mut b = [0u8; 8];
        let _ = (&self.fd).read(&mut b);
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Sets SO_RCVBUF (`recv`) or SO_SNDBUF with the `FORCE` variant, which ignores the
/// system-wide maximum but needs CAP_NET_ADMIN (else `PermissionDenied`).
pub fn set_buffer_force(fd: BorrowedFd<'_>, recv: bool, size: usize) -> io::Result<()> {
    let opt = if recv { libc::SO_RCVBUFFORCE } else { libc::SO_SNDBUFFORCE };
    let val: libc::c_int = size.min(libc::c_int::MAX as usize / 2) as libc::c_int;
    // SAFETY: the option value points to a live c_int and its exact size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &val as *const libc::c_int as *const libc::c_void,
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Attaches a classic BPF filter to a receiving UDP socket that drops, in the kernel, every
/// datagram whose source is `own` (address and port): the multicast loopback copies of this
/// member's own casts. The filter runs with the packet positioned at the UDP header (source
/// port at offset 0) and reads the source address relative to the network header.
pub fn attach_own_filter(fd: BorrowedFd<'_>, own: SocketAddr) -> io::Result<()> {
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let jeq =
        |k: u32, jf: u8| libc::sock_filter { code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16, jt: 0, jf, k };
    let ld_word = |net_off: i32| stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, (libc::SKF_NET_OFF + net_off) as u32);
    let words: Vec<(i32, u32)> = match own.ip() {
        IpAddr::V4(a) => vec![(12, u32::from_be_bytes(a.octets()))],
        IpAddr::V6(a) => {
            let o = a.octets();
            (0..4)
                .map(|i| (8 + 4 * i as i32, u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])))
                .collect()
        }
    };
    // ldh [0]; jeq port; then per address word: ld [net + off]; jeq word; ret 0; ret all.
    // Every failed comparison jumps to the last instruction (accept).
    let len = 2 + 2 * words.len() + 2;
    let accept = len - 1;
    let mut prog = vec![stmt(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0)];
    prog.push(jeq(u32::from(own.port()), (accept - 2) as u8));
    for (off, w) in words {
        prog.push(ld_word(off));
        let at = prog.len();
        prog.push(jeq(w, (accept - at - 1) as u8));
    }
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, 0));
    prog.push(stmt(libc::BPF_RET | libc::BPF_K, u32::MAX));
    debug_assert_eq!(prog.len(), len);
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_mut_ptr() };
    // SAFETY: `fprog` points to `prog`, a live array of `len` instructions; the kernel
    // copies (and verifies) the program during the call and keeps no pointer to it.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const libc::sock_fprog as *const libc::c_void,
            core::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The index of the network interface that holds `addr` (`::1` and `127.0.0.1`: `lo`);
/// 0 (the kernel's choice) for an unspecified address; `NotFound` if no interface has it.
pub fn interface_index(addr: IpAddr) -> io::Result<u32> {
    if addr.is_unspecified() {
        return Ok(0);
    }
    let mut list: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`; we free it below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() && found.is_none() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points to a sockaddr whose family field tells
        // which larger struct it is; we read the larger struct only for that family.
        let here = unsafe {
            match (*ifa.ifa_addr).sa_family as libc::c_int {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    // `s_addr` holds the address in network order, as bytes in memory.
                    Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        if here == Some(addr) {
            // SAFETY: `ifa_name` is a non-null NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            // SAFETY: `name` is a valid NUL-terminated string.
            let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
            found = Some(if idx == 0 { Err(io::Error::last_os_error()) } else { Ok(idx) });
        }
    }
    // SAFETY: `list` came from a successful getifaddrs and is freed exactly once; no
    // reference into it outlives this point (`found` holds owned values).
    unsafe { libc::freeifaddrs(list) };
    found.unwrap_or_else(|| {
        Err(io::Error::new(io::ErrorKind::NotFound, format!("no network interface has the address {addr}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
    use std::time::Instant;

    #[test]
    fn mmsg_round_trip_on_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = SockAddr::from(rx.local_addr().unwrap());
        let heads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3]).collect();
        let bodies: Vec<Vec<u8>> = (0..5u8).map(|i| vec![100 + i; i as usize * 7]).collect();
        let mut sb = SendBatch::new(4);
        let msgs = || heads.iter().zip(&bodies).map(|(h, b)| (&to, &h[..], &b[..]));
        assert_eq!(sb.send(tx.as_fd(), msgs()).unwrap(), 4, "capped at the batch size");
        assert_eq!(sb.send(tx.as_fd(), msgs().skip(4)).unwrap(), 1);
        let mut rb = RecvBatch::new(8, 64);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while got.len() < 5 && Instant::now() < deadline {
            match rb.recv(rx.as_fd()) {
                Ok(n) => got.extend((0..n).map(|i| rb.datagram(i).unwrap().0.to_vec())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("{e}"),
            }
        }
        let want: Vec<Vec<u8>> = heads.iter().zip(&bodies).map(|(h, b)| [&h[..], &b[..]].concat()).collect();
        assert_eq!(got, want);
        assert!(rb.datagram(rb.got).is_none());
        assert_eq!(rb.recv(rx.as_fd()).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn sources_are_reported() {
        for lo in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(rx) = UdpSocket::bind(lo) else {
                assert!(lo.starts_with('['), "no IPv4 loopback");
                continue; // no ::1 on this host
            };
            rx.set_nonblocking(true).unwrap();
            let a = UdpSocket::bind(lo).unwrap();
            let b = UdpSocket::bind(lo).unwrap();
            let to = rx.local_addr().unwrap();
            for (s, d) in [(&a, b"a1"), (&b, b"b1"), (&a, b"a2")] {
                s.send_to(d, to).unwrap();
            }
            let mut rb = RecvBatch::new(8, 16);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut got = Vec::new();
            while got.len() < 3 && Instant::now() < deadline {
                if let Ok(n) = rb.recv(rx.as_fd()) {
                    got.extend((0..n).map(|i| (rb.datagram(i).unwrap().0.to_vec(), rb.source(i))));
                }
            }
            let (a, b) = (Some(a.local_addr().unwrap()), Some(b.local_addr().unwrap()));
            assert_eq!(got, vec![(b"a1".to_vec(), a), (b"b1".to_vec(), b), (b"a2".to_vec(), a)], "on {lo}");
            assert_eq!(rb.source(3), None);
        }
    }

    #[test]
    fn a_datagram_is_taken_with_its_buffer_and_the_slot_refilled() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rb = RecvBatch::new(2, 4096);
        let recv_one = |rb: &mut RecvBatch| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match rb.recv(rx.as_fd()) {
                    Ok(n) => return n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        };
        tx.send_to(&[7u8; 3000], rx.local_addr().unwrap()).unwrap();
        assert_eq!(recv_one(&mut rb), 1);
        let ptr = rb.datagram(0).unwrap().0.as_ptr();
        let b = rb.take(0).expect("taken");
        assert_eq!((&b[..], b.as_ptr()), (&[7u8; 3000][..], ptr), "the slot's own bytes, not a copy");
        assert_eq!((rb.take(0), rb.datagram(0)), (None, None), "taken once");
        tx.send_to(&[5u8; 10], rx.local_addr().unwrap()).unwrap();
        assert_eq!(recv_one(&mut rb), 1);
        assert_eq!(rb.datagram(0).unwrap().0, &[5u8; 10][..], "the slot has a fresh buffer");
        assert_eq!(&b[..], &[7u8; 3000][..], "the taken datagram is untouched");
    }

    #[test]
    fn oversize_datagrams_are_flagged() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(&[9u8; 100], rx.local_addr().unwrap()).unwrap();
        tx.send_to(&[8u8; 16], rx.local_addr().unwrap()).unwrap();
        let mut rb = RecvBatch::new(4, 16);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < 2 && Instant::now() < deadline {
            if let Ok(n) = rb.recv(rx.as_fd()) {
                seen.extend((0..n).map(|i| rb.datagram(i).map(|(d, t)| (d.to_vec(), t)).unwrap()));
            }
        }
        assert_eq!(seen, vec![(vec![9u8; 16], true), (vec![8u8; 16], false)]);
    }

    #[test]
    fn poll_times_out_and_sees_the_waker() {
        let w = Waker::new().unwrap();
        let mut fds = [libc::pollfd { fd: w.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let t = Instant::now();
        assert_eq!(poll(&mut fds, Some(Duration::from_millis(20))).unwrap(), 0);
        assert!(t.elapsed() >= Duration::from_millis(20));
        w.wake();
        w.wake();
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
        w.drain();
        fds[0].revents = 0;
        assert_eq!(poll(&mut fds, Some(Duration::ZERO)).unwrap(), 0, "drain resets the waker");
    }

    #[test]
    fn loopback_interface_index() {
        let v4 = interface_index(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(v4 > 0);
        assert_eq!(interface_index(IpAddr::V6(Ipv6Addr::LOCALHOST)).unwrap(), v4, "::1 and 127.0.0.1 are both on lo");
        assert_eq!(interface_index(IpAddr::V6(Ipv6Addr::UNSPECIFIED)).unwrap(), 0);
        let err = interface_index("192.0.2.77".parse().unwrap()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn own_filter_drops_only_datagrams_from_its_source() {
        for lo in ["127.0.0.1:0", "[::1]:0"] {
            let rx = UdpSocket::bind(lo).unwrap();
            let own = UdpSocket::bind(lo).unwrap();
            let other = UdpSocket::bind(lo).unwrap();
            attach_own_filter(rx.as_fd(), own.local_addr().unwrap()).unwrap();
            let to = rx.local_addr().unwrap();
            own.send_to(b"own 1", to).unwrap();
            other.send_to(b"other", to).unwrap();
            own.send_to(b"own 2", to).unwrap();
            rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while let Ok((n, from)) = rx.recv_from(&mut buf) {
                got.push((buf[..n].to_vec(), from));
                assert!(got.len() < 10);
            }
            assert_eq!(got, vec![(b"other".to_vec(), other.local_addr().unwrap())], "on {lo}");
        }
    }

    #[test]
    fn forced_buffer_is_granted_or_refused_cleanly() {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        match set_buffer_force(s.as_fd(), true, 1 << 20) {
            Ok(()) => {
                let got = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
                assert!(got >= 1 << 20, "forced {got}");
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied),
        }
    }
}
