//! Network interfaces and addresses over rtnetlink: dumps in this or another network
//! namespace, and a live feed of link changes.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd as _;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage},
    link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::io::{unix::AsyncFd, Interest};

use crate::model::decode::Mac;

/// What kind of device a link is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Veth,
    Bridge,
    Other(String),
    Unknown,
}

/// One network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    pub kind: LinkKind,
    /// The bridge (or other controller) this link is enslaved to.
    pub master: Option<u32>,
    /// For a veth: its peer's ifindex (in the peer's namespace).
    pub peer_ifindex: Option<u32>,
    /// For a veth whose peer is in another namespace: that namespace's id, as seen from here.
    pub peer_netnsid: Option<i32>,
    pub mac: Option<Mac>,
    pub up: bool,
}

/// One address of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub ifindex: u32,
    pub ip: IpAddr,
    pub prefix: u8,
}

/// A change reported by the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// A link appeared or changed (state, master, name).
    New(Link),
    /// A link was deleted (or left this namespace).
    Deleted { ifindex: u32, name: String },
    /// Messages were lost (socket buffer overrun): everything must be looked at again.
    Overrun,
}

impl LinkChange {
    /// Whether Docker should be asked again: a new veth usually means a new container
    /// (cheap: only new containers are inspected), so its first packets carry its name.
    pub fn asks_docker(&self) -> bool {
        !matches!(self, LinkChange::Deleted { .. })
    }
}

fn link_from(msg: LinkMessage) -> Link {
    let mut l = Link {
        ifindex: msg.header.index,
        name: String::new(),
        kind: LinkKind::Unknown,
        master: None,
        peer_ifindex: None,
        peer_netnsid: None,
        mac: None,
        up: msg
            .header
            .flags
            .contains(netlink_packet_route::link::LinkFlags::Up),
    };
    for a in msg.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n,
            LinkAttribute::Controller(m) if m != 0 => l.master = Some(m),
            LinkAttribute::Link(p) if p != 0 => l.peer_ifindex = Some(p),
            LinkAttribute::LinkNetNsId(id) => l.peer_netnsid = Some(id),
            LinkAttribute::Address(a) => {
                if let Ok(m) = <[u8; 6]>::try_from(a.as_slice()) {
                    l.mac = Some(Mac(m));
                }
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = match k {
                            InfoKind::Veth => LinkKind::Veth,
                            InfoKind::Bridge => LinkKind::Bridge,
                            other => LinkKind::Other(other.to_string()),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn socket() -> io::Result<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind_auto()?;
    s.connect(&SocketAddr::new(0, 0))?;
    Ok(s)
}

/// Sends a dump request and collects what `keep` makes of each reply message, as it is
/// read: a parsed link message carries every attribute (statistics, per-family settings),
/// several kilobytes each, and holding a thousand links' at once made a heap peak of
/// megabytes that stayed resident.
fn dump<T>(
    request: RouteNetlinkMessage,
    mut keep: impl FnMut(RouteNetlinkMessage) -> Option<T>,
) -> io::Result<Vec<T>> {
    let s = socket()?;
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(request));
    packet.header.flags = NLM_F_DUMP | NLM_F_REQUEST;
    packet.header.sequence_number = 1;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    s.send(&buf, 0)?;
    let mut out = Vec::new();
    let mut rx = vec![0u8; 64 * 1024];
    loop {
        let n = s.recv(&mut &mut rx[..], 0)?;
        let mut off = 0;
        while off < n {
            let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&rx[off..n])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(out),
                NetlinkPayload::Error(e) => {
                    return Err(e.code.map_or_else(
                        || io::Error::other("netlink error"),
                        |c| io::Error::from_raw_os_error(-c.get()),
                    ))
                }
                NetlinkPayload::InnerMessage(m) => out.extend(keep(m)),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

/// Every link of the caller's network namespace.
pub fn dump_links() -> io::Result<Vec<Link>> {
    dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        |m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
            _ => None,
        },
    )
}

/// Every address of the caller's network namespace.
pub fn dump_addrs() -> io::Result<Vec<Addr>> {
    dump(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        |m| match m {
            RouteNetlinkMessage::NewAddress(a) => {
                let ip = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                Some(Addr {
                    ifindex: a.header.index,
                    ip,
                    prefix: a.header.prefix_len,
                })
            }
            _ => None,
        },
    )
}

/// A neighbour entry (IP → MAC) or a bridge forwarding entry (MAC → where: for a VXLAN
/// device, the remote host), of the caller's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    /// The IP address of a neighbour entry; `None` for a forwarding entry.
    pub ip: Option<IpAddr>,
    pub mac: Option<Mac>,
    /// A forwarding entry's remote (`NDA_DST`: for VXLAN, the host that has the MAC).
    pub remote: Option<IpAddr>,
}

/// Every neighbour entry (`ip neigh`) and bridge forwarding entry (`bridge fdb`) of the
/// caller's network namespace.
pub fn dump_neighbours() -> io::Result<Vec<Neighbour>> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Bridge] {
        let mut req = NeighbourMessage::default();
        req.header.family = family;
        out.extend(dump(RouteNetlinkMessage::GetNeighbour(req), |m| match m {
            RouteNetlinkMessage::NewNeighbour(n) => Some(neighbour_from(n)),
            _ => None,
        })?);
    }
    Ok(out)
}

fn neighbour_from(n: NeighbourMessage) -> Neighbour {
    let bridge = n.header.family == AddressFamily::Bridge;
    let mut out = Neighbour {
        ifindex: n.header.ifindex,
        ip: None,
        mac: None,
        remote: None,
    };
    for a in n.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(m) => {
                out.mac = <[u8; 6]>::try_from(m.as_slice()).ok().map(Mac);
            }
            NeighbourAttribute::Destination(d) => {
                let ip = match d {
                    NeighbourAddress::Inet(v4) => Some(IpAddr::V4(v4)),
                    NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(v6)),
                    NeighbourAddress::Other(b) => <[u8; 4]>::try_from(b.as_slice())
                        .ok()
                        .map(IpAddr::from)
                        .or_else(|| <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from)),
                    _ => None,
                };
                if bridge {
                    out.remote = ip;
                } else {
                    out.ip = ip;
                }
            }
            _ => {}
        }
    }
    out
}

/// The environment variable naming where the host's procfs is mounted, for a netlab in a
/// container that cannot share the host's pid namespace (a Swarm service has no
/// `--pid host`): the pids the Docker engine reports are the host's.
pub const HOST_PROC_ENV: &str = "NETLAB_HOST_PROC";

/// The procfs in which the engine's pids name processes: `NETLAB_HOST_PROC` when set, else
/// `/proc`.
pub fn host_proc() -> &'static str {
    static ROOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var(HOST_PROC_ENV)
            .ok()
            .map(|dir| dir.trim_end_matches('/').to_owned())
            .filter(|dir| !dir.is_empty())
            .unwrap_or_else(|| "/proc".to_owned())
    })
}

/// Runs `f` on a short-lived thread inside the network namespace of process `pid`.
///
/// A fresh thread is used so no other thread (tokio's pools included) ever changes
/// namespace; it exits when `f` returns.
pub fn in_netns_of<T: Send + 'static>(
    pid: u32,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    in_netns_at(&format!("{}/{pid}/ns/net", host_proc()), f)
}

/// Runs `f` on a short-lived thread inside the network namespace whose nsfs file is at
/// `path` (a process's `/proc/PID/ns/net`, or a namespace no process holds, bound to a
/// file such as Docker's `/var/run/docker/netns/1-…`).
pub fn in_netns_at<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = std::fs::File::open(path)?;
    std::thread::Builder::new()
        .name("netlab-netns".into())
        .spawn(move || {
            // SAFETY: setns on this thread only, with a valid namespace fd.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })?
        .join()
        .map_err(|_| io::Error::other("netns worker panicked"))?
}

/// The network namespace identity (device, inode) of process `pid`, or of this process.
pub fn netns_id(pid: Option<u32>) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let path = match pid {
        Some(p) => format!("{}/{p}/ns/net", host_proc()),
        None => "/proc/self/ns/net".to_owned(),
    };
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// A live feed of link changes in the caller's network namespace.
pub struct LinkWatcher {
    fd: AsyncFd<Socket>,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<LinkChange>,
}

const RTNLGRP_LINK: u32 = 1;

impl LinkWatcher {
    /// Subscribes to link notifications. Must be called inside a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let mut s = Socket::new(NETLINK_ROUTE)?;
        s.bind(&SocketAddr::new(0, 0))?;
        s.add_membership(RTNLGRP_LINK)?;
        s.set_non_blocking(true)?;
        let _ = s.set_rx_buf_sz(4 << 20);
        // SAFETY: the Socket owns its fd, which stays open and unchanged while the AsyncFd
        // (which owns the Socket) lives.
        let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            fd,
            buf: vec![0; 256 * 1024],
            pending: Default::default(),
        })
    }

    /// The next change.
    pub async fn next(&mut self) -> io::Result<LinkChange> {
        loop {
            if let Some(c) = self.pending.pop_front() {
                return Ok(c);
            }
            let mut guard = self.fd.readable_mut().await?;
            let n = match guard.get_inner_mut().recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(LinkChange::Overrun);
                }
                Err(e) => return Err(e),
            };
            self.parse(n);
        }
    }

    /// A change already queued in the kernel or here, without waiting.
    pub fn try_next(&mut self) -> io::Result<Option<LinkChange>> {
        if let Some(c) = self.pending.pop_front() {
            return Ok(Some(c));
        }
        let n = match self.fd.get_mut().recv(&mut &mut self.buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(Some(LinkChange::Overrun))
            }
            Err(e) => return Err(e),
        };
        self.parse(n);
        Ok(self.pending.pop_front())
    }

    /// Queues the link messages among the first `n` bytes of the buffer.
    fn parse(&mut self, n: usize) {
        let mut off = 0;
        while off < n {
            let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
            else {
                break;
            };
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                    self.pending.push_back(LinkChange::New(link_from(l)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
                    let l = link_from(l);
                    self.pending.push_back(LinkChange::Deleted {
                        ifindex: l.ifindex,
                        name: l.name,
                    });
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_with_its_address() {
        let links = dump_links().expect("link dump");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo exists");
        assert_eq!(lo.ifindex, 1);
        assert_eq!(lo.master, None);
        let addrs = dump_addrs().expect("addr dump");
        // Only assert when lo is configured (it is on every normal host).
        if lo.up {
            assert!(addrs
                .iter()
                .any(|a| a.ifindex == 1 && a.ip == IpAddr::from([127, 0, 0, 1])));
        }
    }

    #[test]
    fn own_netns_via_pid() {
        let me = std::process::id();
        assert_eq!(netns_id(Some(me)).ok(), netns_id(None).ok());
        let names = in_netns_of(me, || {
            Ok(dump_links()?
                .into_iter()
                .map(|l| l.name)
                .collect::<Vec<_>>())
        })
        .expect("dump in own netns");
        assert!(names.iter().any(|n| n == "lo"));
    }
}
