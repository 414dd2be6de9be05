//! The containers of part 6's generated topology, made real on the kernel's side: one
//! process per container, each in a network namespace of its own (as Docker's are), holding
//! the container's `eth0`: the peer `p<k>` of scale veth `h<k>` moved in, or a macvlan on
//! `lan0`; up, with the container's address and MAC, without IPv6 (so it sends nothing).
//! netlab finds a container's veth from inside the container's namespace (through
//! `/proc/<pid>/ns/net`), so these are what it reads, as on a Docker host.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use netlab_tests::host::netns::ip_batch;

use super::endpoints::{Driver, Generated, BRIDGE_NETWORKS, LAN_PARENT};
use super::process::check_stop;
use super::NS_SCALE;

/// The containers' processes (`sleep infinity`), killed when dropped; their namespaces go
/// with them, and with each one its `eth0` (a veth takes its peer `h<k>` along).
pub(super) struct Containers {
    children: Vec<Child>,
}

impl Containers {
    /// Starts `n` processes, each in a new network namespace. They die with the calling
    /// thread (`PR_SET_PDEATHSIG`), so a killed bench leaves none behind: call it from the
    /// thread that outlives them.
    pub(super) fn start(n: usize) -> Result<Self> {
        let mut c = Containers {
            children: Vec::with_capacity(n),
        };
        let parent = std::process::id();
        for _ in 0..n {
            check_stop()?;
            let mut cmd = Command::new("sleep");
            cmd.arg("infinity")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: the closure runs in the child between fork and exec; it only makes
            // async-signal-safe system calls (prctl, getppid, unshare) and builds an
            // io::Error from errno, which does not allocate.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
                        || libc::unshare(libc::CLONE_NEWNET) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent may have died before the death signal was asked for.
                    if libc::getppid() as u32 != parent {
                        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                    }
                    Ok(())
                })
            };
            c.children.push(
                cmd.spawn()
                    .context("starting a container process (sleep in a new network namespace)")?,
            );
        }
        Ok(c)
    }

    /// Each container's process id, in order.
    pub(super) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Gives container `i` of `g` its `eth0` in the scale namespace's terms (one `ip -batch`
    /// there), then its address inside its namespace.
    pub(super) fn wire(&self, g: &Generated) -> Result<()> {
        let pids = self.pids();
        ip_batch(NS_SCALE, &wiring_batch(g, &pids)?)?;
        for (c, pid) in g.containers.iter().zip(&pids) {
            check_stop()?;
            let prefix = g.network_of(c).prefix;
            configure(*pid, c.ip, prefix).with_context(|| format!("configuring {}", c.name))?;
        }
        Ok(())
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

/// The `ip -batch` lines, in the scale namespace, that make the generated topology's
/// interfaces: bridges `br1`… (br0 is there), veths moved from br0 to their network's
/// bridge, each `p<k>` given its container's MAC and moved into the container's namespace as
/// `eth0`; the macvlan parent `lan0` and a macvlan `eth0` made inside each other container.
pub(super) fn wiring_batch(g: &Generated, pids: &[u32]) -> Result<String> {
    if pids.len() != g.containers.len() {
        bail!(
            "{} processes for {} containers",
            pids.len(),
            g.containers.len()
        );
    }
    let mut b = String::new();
    for n in 1..BRIDGE_NETWORKS {
        b.push_str(&format!("link add br{n} type bridge\nlink set br{n} up\n"));
    }
    b.push_str(&format!(
        "link add {LAN_PARENT} type veth peer name {LAN_PARENT}p\nlink set {LAN_PARENT} up\nlink set {LAN_PARENT}p up\n"
    ));
    for (c, pid) in g.containers.iter().zip(pids) {
        let net = g.network_of(c);
        match (net.driver, c.veth, net.bridge.as_deref()) {
            (Driver::Bridge, Some(k), Some(bridge)) => {
                if bridge != "br0" {
                    b.push_str(&format!("link set h{k} master {bridge}\n"));
                }
                b.push_str(&format!(
                    "link set p{k} address {}\nlink set p{k} netns {pid} name eth0\n",
                    c.mac_text()
                ));
            }
            (Driver::Macvlan, None, _) => b.push_str(&format!(
                "link add link {LAN_PARENT} name eth0 netns {pid} address {} type macvlan mode bridge\n",
                c.mac_text()
            )),
            _ => bail!("container {} does not match its network {}", c.name, net.name),
        }
    }
    Ok(b)
}

/// Inside process `pid`'s network namespace (from a thread of its own): IPv6 off, `lo` up,
/// `eth0` up with `ip/prefix`.
fn configure(pid: u32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
    let ns = File::open(format!("/proc/{pid}/ns/net"))
        .with_context(|| format!("opening /proc/{pid}/ns/net"))?;
    thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            // SAFETY: setns(2) on a namespace fd `ns` keeps open across the call; it moves
            // only this short-lived thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error()).context("setns");
            }
            // /proc/sys/net is the calling thread's namespace's.
            for conf in ["all", "default"] {
                let path = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
                std::fs::write(&path, "1").with_context(|| format!("writing {path}"))?;
            }
            let sock = Ioctls::new()?;
            sock.up("lo")?;
            sock.set_addr("eth0", ip, prefix)?;
            sock.up("eth0")
        })
        .join()
        .map_err(|_| anyhow!("the configuring thread panicked"))?
    })
}

/// An AF_INET datagram socket for interface ioctls, closed on drop.
struct Ioctls {
    fd: std::os::fd::OwnedFd,
}

impl Ioctls {
    fn new() -> Result<Self> {
        // SAFETY: socket(2) with constant arguments; the fd returned is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("socket(AF_INET)");
        }
        // SAFETY: `fd` is a new descriptor no one else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        Ok(Ioctls { fd })
    }

    /// An `ifreq` naming `name` (shorter than IFNAMSIZ), the rest zero.
    fn ifreq(name: &str) -> Result<libc::ifreq> {
        // SAFETY: ifreq is plain data (a name array and a union of plain data) for which all
        // zero bytes are a valid value.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= r.ifr_name.len() {
            bail!("interface name {name} too long");
        }
        for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        Ok(r)
    }

    fn ioctl(&self, what: &str, request: libc::Ioctl, r: &mut libc::ifreq) -> Result<()> {
        // SAFETY: `request` is one of the SIOC[GS]IF* requests, which read or write exactly
        // one `ifreq`, and `r` is a valid, exclusively borrowed one.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), request, r as *mut libc::ifreq) } != 0 {
            return Err(std::io::Error::last_os_error()).context(what.to_owned());
        }
        Ok(())
    }

    fn up(&self, name: &str) -> Result<()> {
        let mut r = Self::ifreq(name)?;
        self.ioctl("SIOCGIFFLAGS", libc::SIOCGIFFLAGS, &mut r)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { r.ifr_ifru.ifru_flags };
        r.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(
            &format!("SIOCSIFFLAGS {name} up"),
            libc::SIOCSIFFLAGS,
            &mut r,
        )
    }

    fn set_addr(&self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let sockaddr = |a: Ipv4Addr| {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and both are
            // plain data; an AF_INET sockaddr is a sockaddr_in by definition.
            unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
        };
        let mut r = Self::ifreq(name)?;
        r.ifr_ifru.ifru_addr = sockaddr(ip);
        self.ioctl(
            &format!("SIOCSIFADDR {name} {ip}"),
            libc::SIOCSIFADDR,
            &mut r,
        )?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        let mut r = Self::ifreq(name)?;
        r.ifr_ifru.ifru_netmask = sockaddr(Ipv4Addr::from(mask));
        self.ioctl(
            &format!("SIOCSIFNETMASK {name} /{prefix}"),
            libc::SIOCSIFNETMASK,
            &mut r,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_wires_every_container() {
        let g = Generated::new(8, 2).expect("fits");
        let pids: Vec<u32> = (0..10).map(|i| 700 + i).collect();
        let b = wiring_batch(&g, &pids).expect("a batch");
        let lines: Vec<&str> = b.lines().collect();
        // Three more bridges, the parent, then per veth a MAC and a move (and a new master
        // off br0), per macvlan one line.
        assert_eq!(&lines[..2], ["link add br1 type bridge", "link set br1 up"]);
        assert!(lines.contains(&"link add lan0 type veth peer name lan0p"));
        assert!(!b.contains("link set h0 master") && !b.contains("link set h1 master"));
        assert!(lines.contains(&"link set h2 master br1"));
        assert!(lines.contains(&"link set h7 master br3"));
        assert!(lines.contains(&"link set p3 address 02:42:0a:c9:01:03"));
        assert!(lines.contains(&"link set p3 netns 703 name eth0"));
        assert!(lines.contains(
            &"link add link lan0 name eth0 netns 709 address 02:42:0a:ca:00:03 type macvlan mode bridge"
        ));
        assert_eq!(b.matches(" name eth0").count(), 10);
        assert_eq!(lines.len(), 3 * 2 + 3 + 6 + 8 * 2 + 2);
        assert!(wiring_batch(&g, &pids[..9]).is_err());
    }

    #[test]
    fn ifreq_names_fit() {
        let r = Ioctls::ifreq("eth0").expect("fits");
        assert_eq!(
            r.ifr_name[..5],
            [b'e' as libc::c_char, b't' as _, b'h' as _, b'0' as _, 0]
        );
        assert!(Ioctls::ifreq("a-name-far-too-long").is_err());
    }
}
