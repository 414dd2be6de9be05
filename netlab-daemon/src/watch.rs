//! `netlab watch`: attach, stream sampled packets, print exact counters on exit.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use netlab_common::{record, Config, PacketEvent};
use tokio::io::{unix::AsyncFd, Interest};
use tokio::signal::unix::{signal, SignalKind};

use crate::attach::{self, AttachMode, Attachment};
use crate::clock::Clock;
use crate::event::PacketRecord;
use crate::loader::Datapath;
use crate::summary::Summary;

/// Options of `netlab watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Interface to observe, both directions (repeatable).
    #[arg(long = "iface", value_name = "IFACE", required = true)]
    pub ifaces: Vec<String>,
    /// One JSON object per line instead of human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Stop after printing N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Emit one event for every N packets (counters stay exact).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// At most N events per second reach user space (0: no limit); the rest are counted.
    #[arg(long = "rate-limit", value_name = "N", default_value_t = 200_000)]
    pub rate_limit: u32,
    /// How to hook the programs to each interface.
    #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
    pub attach: AttachMode,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(v.is_finite() && v > 0.0 && v < 1e9) {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The per-CPU share of a host-wide event rate (rounded up, 0 stays "unlimited").
fn per_cpu_rate(rate: u32) -> u32 {
    let cpus = aya::util::nr_cpus().unwrap_or(1).max(1) as u32;
    rate.div_ceil(cpus)
}

/// Where events go: a reusable buffer flushed to stdout once per batch.
struct Sink {
    json: bool,
    bytes: Vec<u8>,
    text: String,
    printed: u64,
    limit: Option<u64>,
}

impl Sink {
    fn full(&self) -> bool {
        self.limit.is_some_and(|l| self.printed >= l)
    }

    fn push(&mut self, rec: &PacketRecord<'_>) -> anyhow::Result<()> {
        if self.full() {
            return Ok(());
        }
        if self.json {
            rec.write_json(&mut self.bytes)?;
        } else {
            self.text.clear();
            rec.write_human(&mut self.text);
            self.bytes.extend_from_slice(self.text.as_bytes());
        }
        self.printed += 1;
        Ok(())
    }

    /// Writes out the batch; `false` when stdout is gone (a closed pipe).
    fn flush(&mut self) -> anyhow::Result<bool> {
        if self.bytes.is_empty() {
            return Ok(true);
        }
        let mut out = std::io::stdout().lock();
        let r = out.write_all(&self.bytes).and_then(|()| out.flush());
        self.bytes.clear();
        match r {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(e).context("writing to stdout"),
        }
    }
}

/// Reads every event available now. Returns `false` once no more output is wanted.
fn drain(
    ring: &mut RingBuf<MapData>,
    names: &HashMap<u32, String>,
    clock: &Clock,
    sink: &mut Sink,
) -> anyhow::Result<bool> {
    while let Some(item) = ring.next() {
        if item.len() < std::mem::size_of::<PacketEvent>() {
            continue;
        }
        // SAFETY: the entry holds at least one PacketEvent, a plain-integer repr(C) type
        // for which any bytes are valid; read_unaligned copes with any alignment.
        let ev: PacketEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
        drop(item);
        if ev.record != record::TC_PACKET {
            continue;
        }
        let name = names.get(&ev.ifindex).map_or("?", String::as_str);
        if let Some(rec) = PacketRecord::new(&ev, name, clock) {
            sink.push(&rec)?;
        }
        if sink.full() {
            break;
        }
    }
    Ok(sink.flush()? && !sink.full())
}

/// Runs `netlab watch` until a signal, `--duration` or `--count`.
pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    crate::privilege::require()?;
    let mut ifaces: Vec<String> = Vec::new();
    for i in &args.ifaces {
        if attach::ifindex(i).is_none() {
            anyhow::bail!("no such interface: {i}");
        }
        if !ifaces.contains(i) {
            ifaces.push(i.clone());
        }
    }
    let mut dp = Datapath::load(Config {
        sample_every: args.sample,
        rate_per_cpu: per_cpu_rate(args.rate_limit),
    })?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    // Attachments live in this Vec: an error below drops it, which detaches everything.
    let mut attachments: Vec<Attachment> = Vec::with_capacity(ifaces.len());
    for iface in &ifaces {
        attachments.push(dp.attach(iface, args.attach)?);
    }
    let names: HashMap<u32, String> = attachments
        .iter()
        .map(|a| (a.ifindex, a.iface.clone()))
        .collect();
    let modes: Vec<&str> = attachments.iter().map(|a| a.mode.name()).collect();
    log::info!(
        "watching {} interfaces ({}): {}",
        attachments.len(),
        modes.first().copied().unwrap_or("-"),
        ifaces.join(", ")
    );
    // SAFETY: the RingBuf owns its map fd, which stays open and unchanged for as long as
    // the AsyncFd (which owns the RingBuf) lives.
    let mut ring =
        unsafe { AsyncFd::register_with_interest(dp.take_events()?, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
            .context("polling the event ring buffer")?;
    let clock = Clock::new();
    let mut sink = Sink {
        json: args.json,
        bytes: Vec::with_capacity(64 * 1024),
        text: String::with_capacity(256),
        printed: 0,
        limit: args.count,
    };
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut more = true;
    while more {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            () = &mut deadline, if args.duration.is_some() => break,
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting for events")?;
                more = drain(guard.get_inner_mut(), &names, &clock, &mut sink)?;
                guard.clear_ready();
            }
        }
    }
    // Detach first, so the counters below are final; then show what was already queued.
    drop(attachments);
    if more {
        drain(ring.get_mut(), &names, &clock, &mut sink)?;
    }
    let counters = dp.counters()?;
    let delivery = dp.delivery()?;
    let summary = Summary::new(&counters, &names, delivery, sink.printed);
    if args.json {
        serde_json::to_writer(&mut sink.bytes, &summary)?;
        sink.bytes.push(b'\n');
    } else {
        sink.bytes.extend_from_slice(summary.human().as_bytes());
    }
    sink.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_secs("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("-3").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
    }

    #[test]
    fn rate_split() {
        assert_eq!(per_cpu_rate(0), 0);
        assert!(per_cpu_rate(1) >= 1);
    }
}
