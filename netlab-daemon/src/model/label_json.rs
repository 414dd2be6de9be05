//! The labelled parts of packet lines, written once and copied after: each interface's
//! `iface` object, and each address's part of an endpoint object.
//!
//! Every packet seen on an interface carries the same `iface` object (name, index, role,
//! container, network, bridge) for as long as the interface keeps its labels, and every
//! endpoint with an address the same `ip`, `container`, `network` and `host` members;
//! writing those names again for every packet (each scanned for characters to escape)
//! was a third of a packet line's cost. [`LabelJson`] keeps each one's bytes with the
//! labels they were written from, and writes them again only when the labels differ: a
//! new topology that relabels an interface or an address gets its new bytes at once.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::event::{Endpoint, IfaceView};
use crate::model::jsonw;

/// Interfaces, and separately addresses, remembered at most; beyond that, it starts over.
const MAX_ENTRIES: usize = 4096;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Written `iface` objects and endpoint parts (see the module docs).
#[derive(Debug, Default)]
pub struct LabelJson {
    ifaces: Map<u32, WrittenIface>,
    ends: Map<IpAddr, WrittenEnd>,
}

/// An interface's object and the labels it was written from.
#[derive(Debug)]
struct WrittenIface {
    name: String,
    role: &'static str,
    container: Option<String>,
    network: Option<String>,
    bridge: Option<String>,
    peer: Option<String>,
    vni: Option<u32>,
    json: Vec<u8>,
}

impl WrittenIface {
    /// Whether it was written from labels equal to `v`'s (its index is the map's key).
    fn is_of(&self, v: &IfaceView<'_>) -> bool {
        self.name == v.name
            && self.role == v.role
            && self.container.as_deref() == v.container
            && self.network.as_deref() == v.network
            && self.bridge.as_deref() == v.bridge
            && self.peer.as_deref() == v.peer
            && self.vni == v.vni
    }
}

/// An endpoint object's members from `ip` on, with its closing brace, and the labels
/// they were written from (the address is the map's key).
#[derive(Debug)]
struct WrittenEnd {
    container: Option<String>,
    network: Option<String>,
    host: bool,
    json: Vec<u8>,
}

impl WrittenEnd {
    fn is_of(&self, e: &Endpoint<'_>) -> bool {
        self.container.as_deref() == e.container
            && self.network.as_deref() == e.network
            && self.host == e.host
    }
}

/// Inserts `v` for `k` in `map`, which starts over when full.
fn remember<K: std::hash::Hash + Eq, V>(map: &mut Map<K, V>, k: K, v: V) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(k, v);
}

impl LabelJson {
    /// Appends the object of `v` to `out`: the bytes [`IfaceView`]'s `Serialize` impl
    /// writes, copied when the interface's labels are those it was last written with.
    pub fn iface(&mut self, v: &IfaceView<'_>, out: &mut Vec<u8>) {
        if let Some(w) = self.ifaces.get(&v.ifindex).filter(|w| w.is_of(v)) {
            out.extend_from_slice(&w.json);
            return;
        }
        let mut json = Vec::with_capacity(192);
        v.write_object(&mut json);
        out.extend_from_slice(&json);
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let w = WrittenIface {
            name: v.name.to_owned(),
            role: v.role,
            container: owned(v.container),
            network: owned(v.network),
            bridge: owned(v.bridge),
            peer: owned(v.peer),
            vni: v.vni,
            json,
        };
        remember(&mut self.ifaces, v.ifindex, w);
    }

    /// Appends the object of `e` to `out`: the bytes [`Endpoint`]'s `Serialize` impl
    /// writes, its MAC address written and the rest copied when the address's labels are
    /// those it was last written with.
    pub fn endpoint(&mut self, e: &Endpoint<'_>, out: &mut Vec<u8>) {
        let Some(ip) = e.ip else {
            e.write_object(out);
            return;
        };
        out.push(b'{');
        if !e.mac.is_zero() {
            out.extend_from_slice(b"\"mac\":");
            jsonw::ascii_string(out, &e.mac.to_text());
            out.push(b',');
        }
        if let Some(w) = self.ends.get(&ip).filter(|w| w.is_of(e)) {
            out.extend_from_slice(&w.json);
            return;
        }
        // The object without its MAC address, less its opening brace: the members
        // from `ip` on.
        let mut json = Vec::with_capacity(96);
        Endpoint {
            mac: Default::default(),
            ..e.clone()
        }
        .write_object(&mut json);
        json.remove(0);
        out.extend_from_slice(&json);
        let w = WrittenEnd {
            container: e.container.map(str::to_owned),
            network: e.network.map(str::to_owned),
            host: e.host,
            json,
        };
        remember(&mut self.ends, ip, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decode::Mac;
    use crate::model::jsonw::tests::rng;

    /// Names as they come, some needing escaping.
    const NAMES: [&str; 6] = ["veth1a2b3c4", "AppDev", "quo\"te", "ctl\u{1}", "", "é→日本"];

    fn pick(n: u64) -> &'static str {
        NAMES[n as usize % NAMES.len()]
    }

    fn opt(n: u64) -> Option<&'static str> {
        (n & 3 != 0).then(|| pick(n >> 2))
    }

    /// Against writing each object afresh: interfaces seen again, relabelled (every label
    /// in turn), indexes reused by other interfaces, more interfaces than it keeps.
    #[test]
    fn ifaces_as_the_view_writes_them() {
        let mut next = rng(17);
        let mut cache = LabelJson::default();
        for i in 0..100_000u64 {
            let r = next();
            let ifindex = if i % 1000 < 10 {
                (r >> 40) as u32 // now and then many interfaces
            } else {
                (r % 8) as u32
            };
            let mostly = |shift: u64, usual: u64| {
                if r >> shift & 31 == 0 {
                    r >> (shift + 5)
                } else {
                    usual
                }
            };
            let v = IfaceView {
                // Mostly the interface's own name and role, now and then others.
                name: pick(mostly(3, u64::from(ifindex))),
                ifindex,
                role: ["bridge", "container-veth", "manual-veth"]
                    [mostly(13, u64::from(ifindex)) as usize % 3],
                // Labels change rarely, each on its own.
                container: opt(mostly(23, 1)),
                network: opt(mostly(33, 2)),
                bridge: opt(mostly(43, 3)),
                peer: opt(mostly(53, 0)),
                vni: (mostly(58, 1) == 0).then_some(4097),
            };
            let (mut cached, mut fresh) = (b"x".to_vec(), b"x".to_vec());
            cache.iface(&v, &mut cached);
            v.write_object(&mut fresh);
            assert_eq!(cached, fresh, "{v:?}");
            assert!(cache.ifaces.len() <= MAX_ENTRIES);
        }
    }

    /// Against writing each object afresh: with and without MAC address and address,
    /// addresses seen again with another MAC address, relabelled, more than it keeps.
    #[test]
    fn endpoints_as_they_write_themselves() {
        let mut next = rng(19);
        let mut cache = LabelJson::default();
        let addrs: [IpAddr; 4] = [
            "172.20.0.2".parse().expect("ip"),
            "172.20.0.3".parse().expect("ip"),
            "fd00::2".parse().expect("ip"),
            "::ffff:10.0.0.1".parse().expect("ip"),
        ];
        for _ in 0..100_000 {
            let r = next();
            let ip = match r & 7 {
                0 => None,
                // Now and then many addresses.
                1 => Some(IpAddr::from(((r >> 8) as u32).to_be_bytes())),
                _ => Some(addrs[(r >> 3) as usize % 4]),
            };
            let n = ip.map_or(0, |ip| match ip {
                IpAddr::V4(v4) => u64::from(u32::from(v4)),
                IpAddr::V6(v6) => u128::from(v6) as u64,
            });
            let mostly = |shift: u64, usual: u64| {
                if r >> shift & 31 == 0 {
                    r >> (shift + 5)
                } else {
                    usual
                }
            };
            let e = Endpoint {
                mac: if r >> 6 & 7 == 0 {
                    Mac::default()
                } else {
                    Mac([2, 0x42, 0xac, (r >> 9) as u8, 0, 2])
                },
                ip,
                container: opt(mostly(17, n)),
                network: opt(mostly(27, n >> 1)),
                host: mostly(37, n) & 7 == 0,
            };
            let (mut cached, mut fresh) = (b"x".to_vec(), b"x".to_vec());
            cache.endpoint(&e, &mut cached);
            e.write_object(&mut fresh);
            assert_eq!(cached, fresh, "{e:?}");
            assert!(cache.ends.len() <= MAX_ENTRIES);
        }
    }
}
