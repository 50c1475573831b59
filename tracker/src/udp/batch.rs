//! Datagrams in and out in batches: `recvmmsg` and `sendmmsg` on Linux.
//!
//! A tracker's packet is a few microseconds of work and two system calls
//! (receive, send), so under load the calls' fixed cost is a large share
//! of its time. [`Batch::receive`] takes up to [`BATCH`] packets in one call
//! (blocking for the first, `MSG_WAITFORONE`, then only what is already
//! queued), and [`Batch::send`] sends every reply of the batch in one. Where
//! these calls do not exist, the same interface does one packet per call.

use std::net::SocketAddr;

use super::MAX_PACKET;

/// Packets taken per call, at most.
pub const BATCH: usize = 32;

/// Buffers for one batch of packets and their replies (one reply buffer
/// per packet, sent unless left empty).
pub struct Batch {
    packets: Vec<[u8; MAX_PACKET]>,
    lengths: [usize; BATCH],
    sources: [Option<SocketAddr>; BATCH],
    replies: Vec<Vec<u8>>,
    count: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            packets: vec![[0u8; MAX_PACKET]; BATCH],
            lengths: [0; BATCH],
            sources: [None; BATCH],
            replies: (0..BATCH).map(|_| Vec::with_capacity(MAX_PACKET)).collect(),
            count: 0,
        }
    }
}

impl Batch {
    /// Packets taken by the last [`Batch::receive`].
    pub fn len(&self) -> usize {
        self.count
    }

    /// Packet `i`, its source, and the (cleared) buffer for its reply;
    /// `None` past the batch or for a source that is not IP.
    pub fn packet(&mut self, i: usize) -> Option<(&[u8], SocketAddr, &mut Vec<u8>)> {
        if i >= self.count {
            return None;
        }
        let source = self.sources[i]?;
        let reply = &mut self.replies[i];
        reply.clear();
        Some((&self.packets[i][..self.lengths[i]], source, reply))
    }

    /// Replies to send, in order: the non-empty ones.
    fn pending(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.count).filter_map(|i| {
            let to = self.sources[i]?;
            let reply = &self.replies[i];
            (!reply.is_empty()).then_some((reply.as_slice(), to))
        })
    }

    fn clear(&mut self) {
        self.count = 0;
        for reply in &mut self.replies {
            reply.clear();
        }
    }
}

#[cfg(target_os = "linux")]
mod os {
    use std::{io, mem, net::UdpSocket, os::fd::AsRawFd};

    use socket2::{SockAddr, SockAddrStorage};

    use super::{Batch, BATCH, MAX_PACKET};

    impl Batch {
        /// Waits for at least one packet (or the socket's read timeout),
        /// then takes every queued one up to [`BATCH`].
        pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.clear();
            let mut names: [SockAddrStorage; BATCH] =
                std::array::from_fn(|_| SockAddrStorage::zeroed());
            // SAFETY: zeroed `iovec` and `mmsghdr` are valid (plain C
            // structs: null pointers and zero lengths).
            let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
            let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
            for i in 0..BATCH {
                iovecs[i].iov_base = self.packets[i].as_mut_ptr().cast();
                iovecs[i].iov_len = MAX_PACKET;
                let header = &mut headers[i].msg_hdr;
                header.msg_name = (&mut names[i] as *mut SockAddrStorage).cast();
                header.msg_namelen = names[i].size_of();
                header.msg_iov = &mut iovecs[i];
                header.msg_iovlen = 1;
            }
            // SAFETY: every header points at a live buffer of the length it
            // gives and at a name of the size it gives; all of them outlive
            // the call. The kernel writes at most those lengths.
            let received = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    headers.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if received < 0 {
                return Err(io::Error::last_os_error());
            }
            let received = received as usize;
            for i in 0..received {
                self.lengths[i] = (headers[i].msg_len as usize).min(MAX_PACKET);
                let length = headers[i].msg_hdr.msg_namelen;
                // SAFETY: the kernel filled `names[i]` with an address of
                // `length` bytes, within the storage's size.
                let name = mem::replace(&mut names[i], SockAddrStorage::zeroed());
                let source = unsafe { SockAddr::new(name, length) };
                self.sources[i] = source.as_socket();
            }
            self.count = received;
            Ok(received)
        }

        /// Sends the replies made since the last receive. Returns how many
        /// could not be sent (the first error of a call skips that packet).
        pub fn send(&mut self, socket: &UdpSocket) -> usize {
            let pending: Vec<(&[u8], SockAddr)> = self
                .pending()
                .map(|(reply, to)| (reply, SockAddr::from(to)))
                .collect();
            let mut failed = 0;
            let mut start = 0;
            while start < pending.len() {
                let rest = &pending[start..];
                // SAFETY: zeroed `iovec` and `mmsghdr` are valid.
                let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
                let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
                for (i, (reply, to)) in rest.iter().enumerate() {
                    iovecs[i].iov_base = reply.as_ptr() as *mut libc::c_void;
                    iovecs[i].iov_len = reply.len();
                    let header = &mut headers[i].msg_hdr;
                    header.msg_name = to.as_ptr() as *mut libc::c_void;
                    header.msg_namelen = to.len();
                    header.msg_iov = &mut iovecs[i];
                    header.msg_iovlen = 1;
                }
                // SAFETY: the headers point at the replies and addresses in
                // `pending`, alive for the call; the kernel only reads them.
                let sent = unsafe {
                    libc::sendmmsg(
                        socket.as_raw_fd(),
                        headers.as_mut_ptr(),
                        rest.len() as libc::c_uint,
                        0,
                    )
                };
                if sent <= 0 {
                    // The first message failed: skip it, go on with the rest.
                    failed += 1;
                    start += 1;
                } else {
                    start += sent as usize;
                }
            }
            failed
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    use std::{io, net::UdpSocket};

    use super::Batch;

    impl Batch {
        /// One packet per call where `recvmmsg` does not exist.
        pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.clear();
            let (length, source) = socket.recv_from(&mut self.packets[0])?;
            self.lengths[0] = length;
            self.sources[0] = Some(source);
            self.count = 1;
            Ok(1)
        }

        /// Sends the replies one by one; returns how many failed.
        pub fn send(&mut self, socket: &UdpSocket) -> usize {
            self.pending()
                .filter(|(reply, to)| socket.send_to(reply, *to).is_err())
                .count()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{net::UdpSocket, time::Duration};

    #[test]
    fn a_batch_takes_every_queued_packet_and_answers_each_source() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let clients: Vec<UdpSocket> = (0..40)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, client) in clients.iter().enumerate() {
            client
                .send_to(&[i as u8; 20], server.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = Batch::default();
        let mut seen = Vec::new();
        while seen.len() < clients.len() {
            let n = batch.receive(&server).unwrap();
            assert!((1..=BATCH).contains(&n));
            assert_eq!(batch.len(), n);
            for i in 0..n {
                let (packet, _from, reply) = batch.packet(i).unwrap();
                assert_eq!(packet.len(), 20);
                seen.push(packet[0]);
                // Answer every other packet; leave the rest empty (no reply).
                if packet[0] % 2 == 0 {
                    let head = packet[..4].to_vec();
                    reply.extend_from_slice(&head);
                }
            }
            assert_eq!(batch.send(&server), 0);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<u8>>());
        let mut buffer = [0u8; 64];
        for (i, client) in clients.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            client
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            assert_eq!(
                client.recv(&mut buffer).unwrap(),
                4,
                "client {i} is answered"
            );
            assert_eq!(buffer[0], i as u8);
        }
        // Every reply has arrived by now (sent before or with the last one
        // above): the others got none.
        for (i, client) in clients.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            client.set_nonblocking(true).unwrap();
            assert!(client.recv(&mut buffer).is_err(), "client {i} gets nothing");
        }
    }
}
