//! `netlab counters`: the exact counters, from the daemon when one answers, else from
//! what a daemon left pinned in bpffs.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context as _;
use aya::maps::{Map, MapData, PerCpuHashMap};
use netlab_common::{CounterKey, MAP_COUNTERS};

use crate::kernel::loader::DeliveryStats;
use crate::model::kind::{Direction, Kind};
use crate::model::summary::{CounterRow, DaemonCounters, Summary};

/// Options of `netlab counters`.
#[derive(Debug, Clone, clap::Args)]
pub struct CountersArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Where a daemon pinned its maps (read when no daemon answers).
    #[arg(long, value_name = "DIR", default_value = crate::cmd::daemon::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

/// Prints the counters.
pub async fn run(args: CountersArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let summary = match crate::api::client::Client::connect().await {
        Some(mut c) => {
            if args.json {
                // The daemon's answer, passed on.
                let now: serde_json::Value = c.get_json("/v1/counters").await?;
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(&mut out, &now)?;
                writeln!(out)?;
                return Ok(());
            }
            let now: DaemonCounters = c.get_json("/v1/counters").await?;
            Summary::from_daemon_diff(&DaemonCounters::default(), &now, 0)
        }
        None => from_pins(&args)?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        out.write_all(summary.human().as_bytes())?;
    }
    Ok(())
}

/// The counters a stopped daemon left pinned (its links keep counting into them).
fn from_pins(args: &CountersArgs) -> anyhow::Result<Summary> {
    crate::kernel::privilege::require()?;
    let path = args.pin_dir.join("maps").join(MAP_COUNTERS);
    if !path.exists() {
        anyhow::bail!(
            "no netlab daemon answers on {} and none left counters in {}: start `netlab daemon`, or use `netlab watch`",
            crate::api::client::socket_path().display(),
            args.pin_dir.display()
        );
    }
    let data = MapData::from_pin(&path).with_context(|| format!("opening {}", path.display()))?;
    let map: PerCpuHashMap<_, CounterKey, u64> = PerCpuHashMap::try_from(Map::PerCpuHashMap(data))
        .with_context(|| format!("reading {}", path.display()))?;
    let names: HashMap<u32, String> = crate::kernel::links::dump_links()?
        .into_iter()
        .map(|l| (l.ifindex, l.name))
        .collect();
    let mut totals = crate::kernel::loader::pinned_slot_counters(&args.pin_dir.join("maps"))?;
    for entry in map.iter() {
        let (key, values) = entry?;
        let (Some(dir), Some(kind)) = (Direction::from_id(key.direction), Kind::from_id(key.kind))
        else {
            continue;
        };
        *totals.entry((key.ifindex, dir, kind)).or_insert(0) += values.iter().sum::<u64>();
    }
    let rows = totals
        .into_iter()
        .map(|((ifindex, dir, kind), packets)| CounterRow {
            iface: names.get(&ifindex).cloned().unwrap_or_else(|| {
                if ifindex & netlab_common::NS_KEY_BIT != 0 {
                    // Named by the daemon, which knew the sandbox; not by this namespace.
                    format!("an overlay sandbox's interface (key {ifindex})")
                } else {
                    format!("ifindex {ifindex}")
                }
            }),
            ifindex,
            label: None,
            direction: dir.name(),
            kind: kind.name(),
            packets,
        })
        .collect();
    log::info!("no daemon answers: counters read from {}", path.display());
    Ok(Summary::new(rows, DeliveryStats::default(), 0))
}
