//! Part 2: UDP packets per second between the namespaces with and without observers.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use super::memory::MemSnapshot;
use netlab_tests::host::netns::in_ns;
use netlab_tests::host::process::{Background, Stdout};

use super::empty::start_empty;
use super::netns::Pair;
use super::process::{spawn, wait_for};
use super::traffic::{udp_window, Receiver, UdpWindow};
use super::{start_watch, Plan, NS_BR};

/// What observes va, vb and br0 during a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Observer {
    None,
    /// No observer again, later in the same round: its ratio to the first is the noise
    /// floor of the comparison.
    NoneAgain,
    Netlab,
    /// netlab without its `skb:kfree_skb` program, to tell the two programs' costs apart.
    NetlabNoDrops,
    TcpdumpFiltered,
    TcpdumpFull,
    /// Empty programs on the tc hooks and the `kfree_skb` raw tracepoint (`xtask
    /// bench-empty --drop-tp`): what any observer there costs.
    Empty,
}

impl Observer {
    pub(super) fn name(self) -> &'static str {
        match self {
            Observer::None => "no observer",
            Observer::NoneAgain => "no observer, again (noise floor)",
            Observer::Netlab => "netlab watch (va, vb, br0)",
            Observer::NetlabNoDrops => "netlab watch --no-drops (va, vb, br0)",
            Observer::TcpdumpFiltered => "tcpdump -i va 'icmp or arp'",
            Observer::TcpdumpFull => "tcpdump -i va (everything)",
            Observer::Empty => "empty programs (tc hooks, kfree_skb raw tracepoint)",
        }
    }

    fn start(self, netlab: &Path, xtask: &Path) -> Result<Option<Background>> {
        let tcpdump = |filter: Option<&str>| -> Result<Option<Background>> {
            let mut c = in_ns(NS_BR, "tcpdump");
            c.args(["-i", "va", "-w", "/dev/null"]);
            if let Some(f) = filter {
                c.arg(f);
            }
            let mut t = spawn(&mut c, Stdout::Discard)?;
            wait_for(&mut t, "listening on", Duration::from_secs(20))?;
            Ok(Some(t))
        };
        match self {
            Observer::None | Observer::NoneAgain => Ok(None),
            Observer::Netlab => start_watch(netlab, &[], Stdout::Discard).map(Some),
            Observer::NetlabNoDrops => {
                start_watch(netlab, &["--no-drops"], Stdout::Discard).map(Some)
            }
            Observer::TcpdumpFiltered => tcpdump(Some("icmp or arp")),
            Observer::TcpdumpFull => tcpdump(None),
            Observer::Empty => start_empty(xtask, true).map(Some),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct PpsWindow {
    pub(super) round: usize,
    pub(super) receiver: Receiver,
    pub(super) observer: Observer,
    pub(super) udp: UdpWindow,
    /// The observer's memory at the end of the window (netlab only).
    pub(super) mem: Option<MemSnapshot>,
}

/// Each round: every observer while b reads (and the baseline twice), then no observer,
/// netlab (with and without its drop program) and the empty programs while b drops every
/// datagram.
pub(super) const PPS_ROUND: [(Receiver, Observer); 10] = [
    (Receiver::Reads, Observer::None),
    (Receiver::Reads, Observer::Netlab),
    (Receiver::Reads, Observer::NetlabNoDrops),
    (Receiver::Reads, Observer::NoneAgain),
    (Receiver::Reads, Observer::TcpdumpFiltered),
    (Receiver::Reads, Observer::TcpdumpFull),
    (Receiver::Drops, Observer::None),
    (Receiver::Drops, Observer::Netlab),
    (Receiver::Drops, Observer::NetlabNoDrops),
    (Receiver::Drops, Observer::Empty),
];

pub(super) fn pps(
    _pair: &Pair,
    netlab: &Path,
    xtask: &Path,
    plan: &Plan,
) -> Result<Vec<PpsWindow>> {
    // Warm-up: caches, ARP, the CPU's frequency.
    udp_window(xtask, 1.0, Receiver::Reads)?;
    let mut windows = Vec::new();
    for round in 0..plan.pps_rounds {
        for (receiver, observer) in PPS_ROUND {
            eprintln!(
                "xtask: bench: packet rate, round {}/{}, b {}, {}",
                round + 1,
                plan.pps_rounds,
                match receiver {
                    Receiver::Reads => "reads",
                    Receiver::Drops => "drops",
                },
                observer.name()
            );
            let running = observer.start(netlab, xtask)?;
            let udp = udp_window(xtask, plan.pps_secs, receiver)?;
            let mut mem = None;
            if let Some(r) = running {
                if matches!(observer, Observer::Netlab | Observer::NetlabNoDrops) {
                    mem = MemSnapshot::of(r.pid()).ok();
                }
                r.stop_within(libc::SIGINT, Duration::from_secs(20))?;
            }
            windows.push(PpsWindow {
                round,
                receiver,
                observer,
                udp,
                mem,
            });
        }
    }
    Ok(windows)
}
