//! One UDP port for every viewer of a host (`--udp IP:PORT` with a port other than 0): a
//! firewall, a NAT rule or a Kubernetes Service then needs that one port.
//!
//! webrtc-rs 0.21 binds a socket per peer connection and has no UDP mux of its own, but it
//! takes its I/O from a [`Runtime`], and wraps every socket it binds through that runtime.
//! [`MuxRuntime`] is the tokio runtime except there: it drops the socket the driver bound
//! (only its address stays, as a label inside that connection) and hands back a
//! [`MuxSocket`] that sends through the shared socket and receives what the shared socket's
//! reader routes to it:
//! - a STUN request carries `USERNAME = <our ufrag>:<theirs>`; every viewer gets its own ICE
//!   credentials (chosen here, before its connection exists), so the ufrag names the viewer,
//!   and the sender's address is routed to it from then on;
//! - an address a viewer sent STUN to is routed to it too (its own checks' answers, or a
//!   STUN server's);
//! - everything else (DTLS, SRTP, SCTP) goes by the sender's address; unknown senders are
//!   dropped and counted.
//!
//! The answer's candidates are then rewritten to the shared port (and to `--public-ip`
//! where the host sits behind a 1:1 NAT), see [`advertise`].
//!
//! What it does not do: host-side TURN through the shared socket (two viewers allocating
//! from one 5-tuple at one TURN server would collide; viewers reach TURN themselves), and
//! one port for several host processes (a node's sessions): that needs the control plane to
//! own the socket and pass packets on, one more hop.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// Datagrams waiting for one viewer's connection to read them; past this they are dropped
/// (a stalled viewer must not hold the others' memory).
const QUEUE: usize = 4096;

/// The shared socket and its routing table.
pub struct UdpMux {
    socket: Arc<tokio::net::UdpSocket>,
    local: SocketAddr,
    routes: Mutex<Routes>,
    /// Datagrams from senders no viewer knows (dropped).
    pub unrouted: AtomicU64,
    /// Datagrams dropped because a viewer's queue was full.
    pub overflowed: AtomicU64,
}

#[derive(Default)]
struct Routes {
    next_id: u64,
    by_ufrag: HashMap<String, Arc<Route>>,
    by_addr: HashMap<SocketAddr, Arc<Route>>,
}

/// One viewer's end of the mux.
struct Route {
    id: u64,
    ufrag: String,
    tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    rx: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
}

impl fmt::Debug for UdpMux {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpMux")
            .field("local", &self.local)
            .finish()
    }
}

impl UdpMux {
    /// Binds `addr` and starts routing what arrives there. Needs a tokio runtime.
    pub fn bind(addr: SocketAddr) -> io::Result<Arc<Self>> {
        let std = std::net::UdpSocket::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind the WebRTC UDP port {addr}: {e}"),
            )
        })?;
        std.set_nonblocking(true)?;
        let local = std.local_addr()?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(std)?);
        let mux = Arc::new(UdpMux {
            socket: socket.clone(),
            local,
            routes: Mutex::default(),
            unrouted: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&mux);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            let mut last_warn: Option<Instant> = None;
            loop {
                let (len, from) = match socket.recv_from(&mut buf).await {
                    Ok(x) => x,
                    // ICMP errors for one peer surface here; the socket serves the rest.
                    Err(e) if is_transient(&e) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "the shared WebRTC UDP socket failed");
                        return;
                    }
                };
                let Some(mux) = weak.upgrade() else { return };
                if !mux.deliver(&buf[..len], from) {
                    let n = mux.unrouted.fetch_add(1, Ordering::Relaxed) + 1;
                    if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        last_warn = Some(Instant::now());
                        tracing::debug!(%from, dropped = n, "UDP datagram for no viewer dropped");
                    }
                }
            }
        });
        tracing::info!(%local, "WebRTC on one UDP port");
        Ok(mux)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A viewer's end, under the ICE username fragment its connection will use.
    fn register(self: &Arc<Self>, ufrag: &str) -> Arc<Route> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.next_id += 1;
        let route = Arc::new(Route {
            id: routes.next_id,
            ufrag: ufrag.to_owned(),
            tx,
            rx: tokio::sync::Mutex::new(rx),
        });
        routes.by_ufrag.insert(ufrag.to_owned(), route.clone());
        route
    }

    fn unregister(&self, id: u64, ufrag: &str) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.by_ufrag.get(ufrag).is_some_and(|r| r.id == id) {
            routes.by_ufrag.remove(ufrag);
        }
        routes.by_addr.retain(|_, r| r.id != id);
    }

    /// Routes one datagram; `false` when no viewer takes it.
    fn deliver(&self, packet: &[u8], from: SocketAddr) -> bool {
        let route = {
            let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
            match stun_local_ufrag(packet).and_then(|u| routes.by_ufrag.get(u).cloned()) {
                Some(r) => {
                    routes.by_addr.insert(from, r.clone());
                    Some(r)
                }
                None => routes.by_addr.get(&from).cloned(),
            }
        };
        let Some(route) = route else { return false };
        if route.tx.try_send((packet.to_vec(), from)).is_err() {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    fn learn(&self, to: SocketAddr, route: &Arc<Route>) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.by_addr.get(&to).is_none_or(|r| r.id != route.id) {
            routes.by_addr.insert(to, route.clone());
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

/// Whether `packet` is a STUN message (RFC 7983: first byte 0–3, DTLS 20–63, RTP/RTCP
/// 128–191; then the magic cookie).
fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[0] <= 3 && packet[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// The local (first) half of a STUN request's `USERNAME` (RFC 8445 §7.2.2: `<receiver's
/// ufrag>:<sender's ufrag>`), if `packet` is a STUN message that has one.
fn stun_local_ufrag(packet: &[u8]) -> Option<&str> {
    const USERNAME: u16 = 0x0006;
    if !is_stun(packet) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let body = packet.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + alen)?;
        if kind == USERNAME {
            let name = std::str::from_utf8(value).ok()?;
            return name.split(':').next();
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

/// A viewer's ICE credentials and its end of the mux; dropped with the viewer's connection,
/// which takes its routes away.
pub struct MuxPort {
    mux: Arc<UdpMux>,
    route: Arc<Route>,
    pub ufrag: String,
    pub pwd: String,
}

impl MuxPort {
    pub fn new(mux: &Arc<UdpMux>) -> Arc<Self> {
        let ufrag = random_ice_chars(16);
        let pwd = random_ice_chars(32);
        let route = mux.register(&ufrag);
        Arc::new(MuxPort {
            mux: mux.clone(),
            route,
            ufrag,
            pwd,
        })
    }

    /// The runtime this viewer's connection is built with.
    pub fn runtime(self: &Arc<Self>) -> Arc<dyn Runtime> {
        Arc::new(MuxRuntime { port: self.clone() })
    }
}

impl Drop for MuxPort {
    fn drop(&mut self) {
        self.mux.unregister(self.route.id, &self.route.ufrag);
    }
}

/// ICE characters (RFC 8839 `ice-char`: ALPHA / DIGIT / "+" / "/"), random.
fn random_ice_chars(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| CHARS[rand::random_range(0..CHARS.len())] as char)
        .collect()
}

/// The tokio runtime, except that sockets are the viewer's end of the mux.
struct MuxRuntime {
    port: Arc<MuxPort>,
}

impl fmt::Debug for MuxRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxRuntime").finish()
    }
}

impl Runtime for MuxRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn(future)
    }

    fn spawn_reactor(
        &self,
        pool: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        TokioRuntime.spawn_reactor(pool, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        // Its address labels the candidate inside the connection; the port itself is closed.
        let label = socket.local_addr()?;
        drop(socket);
        Ok(Arc::new(MuxSocket {
            port: self.port.clone(),
            label,
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        TokioRuntime.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        TokioRuntime.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        TokioRuntime.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        TokioRuntime.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        TokioRuntime.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        TokioRuntime.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio+udp-mux"
    }
}

/// A viewer's socket: sends through the shared one, receives what is routed to it.
struct MuxSocket {
    port: Arc<MuxPort>,
    label: SocketAddr,
}

impl fmt::Debug for MuxSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxSocket")
            .field("label", &self.label)
            .field("shared", &self.port.mux.local)
            .finish()
    }
}

impl AsyncUdpSocket for MuxSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.label)
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let mux = &self.port.mux;
        // A new destination is always first reached by a STUN message (a connectivity check,
        // or a request to a STUN server); media then goes where STUN went, so only STUN
        // sends touch the routing table, not every media packet.
        if is_stun(transmit.contents) {
            mux.learn(transmit.destination, &self.port.route);
        }
        // One datagram per send (max_gso_segments is 1).
        match mux
            .socket
            .poll_send_to(cx, transmit.contents, transmit.destination)
        {
            Poll::Ready(Err(e)) if is_transient(&e) && e.kind() != io::ErrorKind::WouldBlock => {
                Poll::Ready(Ok(transmit.contents.len()))
            }
            other => other,
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let route = &self.port.route;
        let Ok(mut rx) = route.rx.try_lock() else {
            // Another receive of this connection is in progress; it will be woken.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let next = if n == 0 {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(x)) => x,
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(io::Error::other("the UDP mux closed")))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                match rx.try_recv() {
                    Ok(x) => x,
                    Err(_) => break,
                }
            };
            let (packet, from) = next;
            let len = packet.len().min(bufs[n].len());
            bufs[n][..len].copy_from_slice(&packet[..len]);
            let mut m = RecvMeta::default();
            m.addr = from;
            m.len = len;
            m.stride = len.max(1);
            m.dst_ip = Some(self.label.ip());
            meta[n] = m;
            n += 1;
        }
        Poll::Ready(Ok(n))
    }
}

/// What a connection on the mux binds: the configured addresses with port 0 (their
/// addresses name its candidates; the port is the mux's).
pub fn label_addrs(udp: &[String]) -> Vec<String> {
    udp.iter()
        .map(|a| match a.parse::<SocketAddr>() {
            Ok(mut s) => {
                s.set_port(0);
                s.to_string()
            }
            Err(_) => a.clone(),
        })
        .collect()
}

/// The answer's host candidates on the shared port (and at `public_ip` when given), each
/// address once; other candidates as they are.
pub fn advertise(sdp: &str, port: u16, public_ip: Option<IpAddr>) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let Some(rewritten) = rewrite_candidate(line.trim_end(), port, public_ip) else {
            out.push_str(line);
            continue;
        };
        // Identical after the rewrite (several interfaces behind one public address): once.
        let key: Vec<&str> = rewritten.split(' ').skip(2).collect();
        if seen.insert(key.join(" ")) {
            out.push_str(&rewritten);
            out.push_str("\r\n");
        }
    }
    out
}

/// `a=candidate:F C udp P IP PORT typ host …` with IP/PORT replaced; `None` for any other line.
fn rewrite_candidate(line: &str, port: u16, public_ip: Option<IpAddr>) -> Option<String> {
    let rest = line.strip_prefix("a=candidate:")?;
    let mut f: Vec<String> = rest.split(' ').map(str::to_owned).collect();
    if f.len() < 8 || !f[2].eq_ignore_ascii_case("udp") || f[6] != "typ" || f[7] != "host" {
        return None;
    }
    if let Some(ip) = public_ip {
        f[4] = ip.to_string();
    }
    f[5] = port.to_string();
    Some(format!("a=candidate:{}", f.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // PRIORITY first, then USERNAME padded to 4.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut p = vec![0x00, 0x01];
        p.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        p.extend_from_slice(&[7; 12]);
        p.extend_from_slice(&attrs);
        p
    }

    #[test]
    fn the_local_ufrag_is_read_from_a_stun_request() {
        assert_eq!(stun_local_ufrag(&stun_request("abcde:xyz")), Some("abcde"));
        // Not STUN: DTLS (first byte 22), RTP (0x80), a short or cut message.
        let mut dtls = stun_request("abcde:xyz");
        dtls[0] = 22;
        assert_eq!(stun_local_ufrag(&dtls), None);
        assert_eq!(stun_local_ufrag(&[0x80; 40]), None);
        let cut = stun_request("abcde:xyz");
        assert_eq!(stun_local_ufrag(&cut[..cut.len() - 8]), None);
        assert_eq!(stun_local_ufrag(&[0; 4]), None);
    }

    #[test]
    fn host_candidates_move_to_the_shared_port_and_the_public_address() {
        let sdp = "v=0\r\n\
            a=candidate:1 1 udp 2130706431 10.0.0.5 40001 typ host\r\n\
            a=candidate:2 1 udp 2130706431 172.17.0.2 40002 typ host\r\n\
            a=candidate:3 1 udp 1694498815 203.0.113.9 5555 typ srflx raddr 0.0.0.0 rport 0\r\n\
            a=end-of-candidates\r\n";
        let out = advertise(sdp, 3478, None);
        assert!(out.contains("10.0.0.5 3478 typ host"), "{out}");
        assert!(out.contains("172.17.0.2 3478 typ host"), "{out}");
        assert!(out.contains("203.0.113.9 5555 typ srflx"), "{out}");
        let public = advertise(sdp, 3478, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(
            public.matches("198.51.100.7 3478 typ host").count(),
            1,
            "{public}"
        );
        assert!(public.ends_with("a=end-of-candidates\r\n"));
    }

    #[tokio::test]
    async fn datagrams_reach_the_viewer_whose_ufrag_they_name_then_follow_the_address() {
        let mux = UdpMux::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (a, b) = (MuxPort::new(&mux), MuxPort::new(&mux));
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = mux.local_addr();
        // Unknown sender, no STUN: dropped.
        peer.send_to(b"\x80hello", to).await.unwrap();
        // A check naming b's ufrag, then media from the same address: both to b.
        peer.send_to(&stun_request(&format!("{}:remote", b.ufrag)), to)
            .await
            .unwrap();
        peer.send_to(b"\x80media", to).await.unwrap();
        let sock_b = b
            .runtime()
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = sock_b.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, peer.local_addr().unwrap());
        assert_eq!(stun_local_ufrag(&buf[..n]), Some(b.ufrag.as_str()));
        let (n, _) = sock_b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"\x80media");
        assert_eq!(mux.unrouted.load(Ordering::Relaxed), 1);
        // b answers from the shared port; a got nothing.
        sock_b
            .send_to(b"reply", peer.local_addr().unwrap())
            .await
            .unwrap();
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"reply"[..], to));
        let sock_a = a
            .runtime()
            .wrap_udp_socket(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .unwrap();
        let nothing =
            tokio::time::timeout(Duration::from_millis(50), sock_a.recv_from(&mut buf)).await;
        assert!(nothing.is_err());
        // b gone: its address routes nowhere.
        drop(sock_b);
        drop(b);
        peer.send_to(b"\x80late", to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(mux.unrouted.load(Ordering::Relaxed), 2);
    }
}
