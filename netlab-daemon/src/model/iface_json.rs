//! The `iface` object of packet lines, written once per interface and copied after.
//!
//! Every packet seen on an interface carries the same `iface` object (name, index, role,
//! container, network, bridge) for as long as the interface keeps its labels; writing its
//! names again for every packet (each scanned for characters to escape) was a fifth of a
//! packet line's cost. [`IfaceJson`] keeps each interface's object with the labels it was
//! written from, and writes it again only when they differ: a new topology that relabels
//! an interface gets its new object at once, whatever the interface's index was before.

use std::collections::HashMap;

use crate::model::event::IfaceView;

/// Interfaces remembered at most; beyond that, it starts over.
const MAX_IFACES: usize = 4096;

/// The `iface` objects of the interfaces packets were seen on (see the module docs).
#[derive(Debug, Default)]
pub struct IfaceJson {
    by_ifindex: HashMap<u32, Written, foldhash::fast::RandomState>,
}

/// An interface's object and the labels it was written from.
#[derive(Debug)]
struct Written {
    name: String,
    role: &'static str,
    container: Option<String>,
    network: Option<String>,
    bridge: Option<String>,
    peer: Option<String>,
    json: Vec<u8>,
}

impl Written {
    /// Whether it was written from labels equal to `v`'s (its index is the map's key).
    fn is_of(&self, v: &IfaceView<'_>) -> bool {
        self.name == v.name
            && self.role == v.role
            && self.container.as_deref() == v.container
            && self.network.as_deref() == v.network
            && self.bridge.as_deref() == v.bridge
            && self.peer.as_deref() == v.peer
    }
}

impl IfaceJson {
    /// Appends the object of `v` to `out`: the bytes [`IfaceView`]'s `Serialize` impl
    /// writes, copied when the interface's labels are those it was last written with.
    pub fn write(&mut self, v: &IfaceView<'_>, out: &mut Vec<u8>) {
        if let Some(w) = self.by_ifindex.get(&v.ifindex).filter(|w| w.is_of(v)) {
            out.extend_from_slice(&w.json);
            return;
        }
        let mut json = Vec::with_capacity(192);
        v.write_object(&mut json);
        out.extend_from_slice(&json);
        if self.by_ifindex.len() >= MAX_IFACES {
            self.by_ifindex.clear();
        }
        let owned = |s: Option<&str>| s.map(str::to_owned);
        self.by_ifindex.insert(
            v.ifindex,
            Written {
                name: v.name.to_owned(),
                role: v.role,
                container: owned(v.container),
                network: owned(v.network),
                bridge: owned(v.bridge),
                peer: owned(v.peer),
                json,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::jsonw::tests::rng;

    /// Names as they come, some needing escaping.
    const NAMES: [&str; 6] = ["veth1a2b3c4", "AppDev", "quo\"te", "ctl\u{1}", "", "é→日本"];

    /// Against writing each object afresh: interfaces seen again, relabelled (every label
    /// in turn), indexes reused by other interfaces, more interfaces than it keeps.
    #[test]
    fn writes_what_the_view_writes() {
        let mut next = rng(17);
        let mut cache = IfaceJson::default();
        let pick = |n: u64| NAMES[n as usize % NAMES.len()];
        let opt = |n: u64| (n & 3 != 0).then(|| pick(n >> 2));
        for i in 0..100_000u64 {
            let r = next();
            let ifindex = if i % 1000 < 10 {
                (r >> 40) as u32 // now and then many interfaces
            } else {
                (r % 8) as u32
            };
            let v = IfaceView {
                // Mostly the interface's own name and role, now and then others.
                name: pick(if r >> 48 & 15 == 0 {
                    r >> 3
                } else {
                    u64::from(ifindex)
                }),
                ifindex,
                role: ["bridge", "container-veth", "manual-veth"][if r >> 52 & 15 == 0 {
                    r >> 6
                } else {
                    u64::from(ifindex)
                } as usize
                    % 3],
                // Labels change rarely, each on its own.
                container: opt(if r >> 8 & 31 == 0 { r >> 13 } else { 1 }),
                network: opt(if r >> 18 & 31 == 0 { r >> 23 } else { 2 }),
                bridge: opt(if r >> 28 & 31 == 0 { r >> 33 } else { 3 }),
                peer: opt(if r >> 38 & 31 == 0 { r >> 43 } else { 0 }),
            };
            let (mut cached, mut fresh) = (b"x".to_vec(), b"x".to_vec());
            cache.write(&v, &mut cached);
            v.write_object(&mut fresh);
            assert_eq!(cached, fresh, "{v:?}");
            assert!(cache.by_ifindex.len() <= MAX_IFACES);
        }
    }
}
