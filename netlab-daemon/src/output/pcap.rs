//! Sampled frames written to a pcapng file (`netlab capture`), each interface described
//! with its container and network, each packet commented with who talks to whom.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Context as _;

use super::{Ctx, Event, Output};
use crate::model::event::{write_route, PacketRecord};
use crate::model::filter::Filter;
use crate::output::pcapng::PcapngWriter;
use netlab_common::PacketEvent;

/// The selected packets' frames, up to `--count`.
pub struct Pcap<W: Write> {
    w: PcapngWriter<W>,
    /// (ifindex, name) → pcapng interface id.
    ifaces: HashMap<(u32, String), u32>,
    filter: Filter,
    limit: Option<u64>,
    written: u64,
    /// Where the frames go, for the closing log line.
    path: Option<std::path::PathBuf>,
}

impl Pcap<std::io::BufWriter<std::fs::File>> {
    /// Creates (or truncates) `path`.
    pub fn create(
        path: &std::path::Path,
        filter: Filter,
        limit: Option<u64>,
    ) -> anyhow::Result<Self> {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut p = Pcap::new(std::io::BufWriter::new(f), filter, limit)?;
        p.path = Some(path.to_owned());
        Ok(p)
    }
}

impl<W: Write> Pcap<W> {
    pub fn new(out: W, filter: Filter, limit: Option<u64>) -> anyhow::Result<Self> {
        Ok(Pcap {
            w: PcapngWriter::new(out, "netlab")?,
            ifaces: HashMap::new(),
            filter,
            limit,
            written: 0,
            path: None,
        })
    }

    fn write(&mut self, rec: &PacketRecord<'_>, ev: &PacketEvent) -> anyhow::Result<()> {
        let i = &rec.iface;
        let key = (i.ifindex, i.name.to_owned());
        let id = match self.ifaces.get(&key) {
            Some(id) => *id,
            None => {
                let mut desc = i.role.to_owned();
                if let Some(c) = i.container {
                    desc.push_str(&format!(" of {c}"));
                }
                if let Some(n) = i.network {
                    desc.push_str(&format!(", network {n}"));
                }
                if let Some(b) = i.bridge {
                    desc.push_str(&format!(", bridge {b}"));
                }
                let id = self
                    .w
                    .add_interface(i.name, &desc, netlab_common::SNAP_LEN as u32)?;
                self.ifaces.insert(key, id);
                id
            }
        };
        let mut comment = String::with_capacity(96);
        write_route(&mut comment, &rec.src, &rec.dst);
        comment.push(' ');
        comment.push_str(rec.kind.name());
        comment.push(' ');
        comment.push_str(rec.direction.name());
        let cap = usize::from(ev.cap_len).min(ev.data.len());
        self.w.write_packet(
            id,
            rec.ts.0,
            &ev.data[..cap],
            ev.pkt_len.max(cap as u32),
            Some(&comment),
        )?;
        self.written += 1;
        Ok(())
    }
}

impl<W: Write + 'static> Output for Pcap<W> {
    fn event(&mut self, ev: Event<'_>, _: Ctx<'_>) -> anyhow::Result<()> {
        match ev {
            Event::Packet(rec, raw) if !self.done() && self.filter.matches(rec) => {
                self.write(rec, raw)
            }
            _ => Ok(()),
        }
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.written >= l)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.w.flush()?;
        if let Some(f) = &self.path {
            log::info!(
                "wrote {} to {}",
                super::plural(self.written, "frame", "frames"),
                f.display()
            );
        }
        Ok(())
    }
}
