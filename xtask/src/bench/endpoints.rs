//! The generated Docker topology of part 6: running containers with one endpoint each, as a
//! Docker engine describes them, and the Engine API's answers about them
//! ([`Generated::answers`], served by `engine_api.rs`).
//!
//! The first containers are the 500 veths of the scale namespace: container `k` owns `p<k>`
//! (moved into its network namespace as `eth0`), whose host end `h<k>` is a port of one of
//! [`BRIDGE_NETWORKS`] bridge networks (bridges `br0`…`br3`). The others are on a macvlan
//! network (parent `lan0`): labelled endpoints without a veth, which netlab does not observe
//! but labels by address and MAC. Names, ids, addresses and MACs are derived from the
//! container's number, so a run is the same every time.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{ensure, Result};
use serde_json::{json, Value};

/// Bridge networks the veths are spread over, in blocks (`h0`… on the first).
pub(super) const BRIDGE_NETWORKS: usize = 4;
/// What the generated engine says it is (Docker 28, what the project's hosts run).
pub(super) const ENGINE_VERSION: &str = "28.5.2";
pub(super) const API_VERSION: &str = "1.51";
/// The macvlan network's parent interface in the scale namespace.
pub(super) const LAN_PARENT: &str = "lan0";
/// The image every generated container runs.
const IMAGE: &str = "netlab/busybox";
/// When the generated engine says the containers were created and started.
const CREATED: &str = "2026-11-30T21:00:00.000000000Z";
const STARTED: &str = "2026-11-30T21:00:01.000000000Z";

/// What a network's endpoints are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Driver {
    /// A Linux bridge; each endpoint is a veth whose host end is a port of it.
    Bridge,
    /// Macvlan on a parent interface; no veth, nothing for netlab to observe.
    Macvlan,
}

impl Driver {
    fn name(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
        }
    }
}

/// A generated Docker network.
#[derive(Debug, Clone)]
pub(super) struct Network {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) driver: Driver,
    /// The bridge device (`com.docker.network.bridge.name`), for a bridge network.
    pub(super) bridge: Option<String>,
    pub(super) subnet: Ipv4Addr,
    pub(super) prefix: u8,
    pub(super) gateway: Ipv4Addr,
}

/// A generated running container and its one endpoint.
#[derive(Debug, Clone)]
pub(super) struct Container {
    pub(super) id: String,
    pub(super) name: String,
    /// Index into [`Generated::networks`].
    pub(super) network: usize,
    pub(super) ip: Ipv4Addr,
    pub(super) mac: [u8; 6],
    /// `k` for the container owning veth pair `h<k>`/`p<k>`; `None` on the macvlan network.
    pub(super) veth: Option<u32>,
}

impl Container {
    /// `02:42:0a:c9:00:02`.
    pub(super) fn mac_text(&self) -> String {
        mac_text(&self.mac)
    }
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The generated topology.
#[derive(Debug, Clone)]
pub(super) struct Generated {
    pub(super) networks: Vec<Network>,
    pub(super) containers: Vec<Container>,
}

/// 64 hex digits, as Docker's ids, from a tag and a number (splitmix64).
fn hex_id(tag: u64, n: u64) -> String {
    let mut x = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n;
    (0..4)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

const TAG_NETWORK: u64 = 1;
const TAG_CONTAINER: u64 = 2;
const TAG_ENDPOINT: u64 = 3;
const TAG_SANDBOX: u64 = 4;
const TAG_IMAGE: u64 = 5;

/// Docker's MAC for an address: `02:42` and the address's four bytes.
fn docker_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

impl Generated {
    /// `veths` containers on the bridge networks (one per veth pair of the scale namespace)
    /// and `lan` more on the macvlan network.
    pub(super) fn new(veths: u32, lan: u32) -> Result<Self> {
        let per_bridge = (veths as usize).div_ceil(BRIDGE_NETWORKS);
        ensure!(
            per_bridge <= 250,
            "{veths} veths do not fit {BRIDGE_NETWORKS} /24 networks"
        );
        ensure!(lan <= 60_000, "{lan} macvlan endpoints do not fit a /16");
        let mut networks: Vec<Network> = (0..BRIDGE_NETWORKS)
            .map(|n| Network {
                id: hex_id(TAG_NETWORK, n as u64),
                name: format!("nlbench-net{n}"),
                driver: Driver::Bridge,
                bridge: Some(format!("br{n}")),
                subnet: Ipv4Addr::new(10, 201, n as u8, 0),
                prefix: 24,
                gateway: Ipv4Addr::new(10, 201, n as u8, 1),
            })
            .collect();
        networks.push(Network {
            id: hex_id(TAG_NETWORK, BRIDGE_NETWORKS as u64),
            name: "nlbench-lan".into(),
            driver: Driver::Macvlan,
            bridge: None,
            subnet: Ipv4Addr::new(10, 202, 0, 0),
            prefix: 16,
            gateway: Ipv4Addr::new(10, 202, 0, 1),
        });
        let mut containers = Vec::new();
        for k in 0..veths {
            let (n, host) = (k as usize / per_bridge, k as usize % per_bridge);
            let ip = Ipv4Addr::new(10, 201, n as u8, host as u8 + 2);
            containers.push(Container {
                id: hex_id(TAG_CONTAINER, u64::from(k)),
                name: format!("nlb-app-{k:04}"),
                network: n,
                ip,
                mac: docker_mac(ip),
                veth: Some(k),
            });
        }
        for j in 0..lan {
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 202, 0, 2)) + j);
            containers.push(Container {
                id: hex_id(TAG_CONTAINER, u64::from(veths + j)),
                name: format!("nlb-lan-{j:04}"),
                network: BRIDGE_NETWORKS,
                ip,
                mac: docker_mac(ip),
                veth: None,
            });
        }
        Ok(Generated {
            networks,
            containers,
        })
    }

    /// The network of container `c`.
    pub(super) fn network_of(&self, c: &Container) -> &Network {
        &self.networks[c.network]
    }

    /// What the engine answers, with container `i`'s process `pids[i]` (the holder of its
    /// network namespace).
    pub(super) fn answers(&self, pids: &[u32]) -> Answers {
        let mut inspect = HashMap::new();
        let mut list = Vec::new();
        for (n, (c, pid)) in self.containers.iter().zip(pids).enumerate() {
            let body = self.inspect(n, *pid).to_string();
            inspect.insert(c.id.clone(), body.clone());
            inspect.insert(c.name.clone(), body);
            list.push(self.summary(n));
        }
        let mut networks = vec![
            json!({
                "Name": "bridge", "Id": hex_id(TAG_NETWORK, 100), "Created": CREATED,
                "Scope": "local", "Driver": "bridge", "EnableIPv4": true, "EnableIPv6": false,
                "IPAM": {"Driver": "default", "Options": null,
                         "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
                "Internal": false, "Attachable": false, "Ingress": false,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {},
                "Options": {
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": "docker0",
                    "com.docker.network.driver.mtu": "1500"
                },
                "Labels": {}
            }),
            json!({"Name": "host", "Id": hex_id(TAG_NETWORK, 101), "Created": CREATED,
                   "Scope": "local", "Driver": "host", "EnableIPv4": true, "EnableIPv6": false,
                   "IPAM": {"Driver": "default", "Options": null, "Config": null},
                   "Internal": false, "Attachable": false, "Ingress": false,
                   "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {},
                   "Options": {}, "Labels": {}}),
            json!({"Name": "none", "Id": hex_id(TAG_NETWORK, 102), "Created": CREATED,
                   "Scope": "local", "Driver": "null", "EnableIPv4": true, "EnableIPv6": false,
                   "IPAM": {"Driver": "default", "Options": null, "Config": null},
                   "Internal": false, "Attachable": false, "Ingress": false,
                   "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {},
                   "Options": {}, "Labels": {}}),
        ];
        networks.extend(self.networks.iter().map(network_json));
        let running = self.containers.len();
        Answers {
            version: json!({
                "Platform": {"Name": "netlab bench: generated topology"},
                "Version": ENGINE_VERSION, "ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
                "GitCommit": "0000000", "GoVersion": "go1.24.9", "Os": "linux", "Arch": "amd64",
                "KernelVersion": kernel_release(), "BuildTime": CREATED
            })
            .to_string(),
            info: json!({
                "ID": hex_id(TAG_NETWORK, 200), "Containers": running,
                "ContainersRunning": running, "ContainersPaused": 0, "ContainersStopped": 0,
                "Images": 1, "Driver": "overlay2", "Name": "nlbench",
                "ServerVersion": ENGINE_VERSION, "OSType": "linux", "Architecture": "x86_64",
                "OperatingSystem": "netlab bench: generated topology",
                "KernelVersion": kernel_release(), "CgroupDriver": "systemd",
                "CgroupVersion": "2", "DockerRootDir": "/var/lib/docker",
                "FirewallBackend": {"Driver": "iptables"},
                "SecurityOptions": ["name=seccomp,profile=builtin", "name=cgroupns"]
            })
            .to_string(),
            networks: Value::Array(networks).to_string(),
            containers: Value::Array(list).to_string(),
            inspect,
        }
    }

    /// Container `n`'s endpoint, as `NetworkSettings.Networks.<name>` describes it.
    fn endpoint(&self, n: usize) -> Value {
        let c = &self.containers[n];
        let net = self.network_of(c);
        json!({
            "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": c.mac_text(),
            "DriverOpts": null, "GwPriority": 0, "NetworkID": net.id,
            "EndpointID": hex_id(TAG_ENDPOINT, n as u64), "Gateway": net.gateway.to_string(),
            "IPAddress": c.ip.to_string(), "IPPrefixLen": net.prefix, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": [c.name, &c.id[..12]]
        })
    }

    /// Container `n`'s entry of `GET /containers/json`.
    fn summary(&self, n: usize) -> Value {
        let c = &self.containers[n];
        let net = self.network_of(c);
        json!({
            "Id": c.id, "Names": [format!("/{}", c.name)], "Image": IMAGE,
            "ImageID": format!("sha256:{}", hex_id(TAG_IMAGE, 0)),
            "Command": "sleep infinity", "Created": 1_796_072_400, "Ports": [],
            "Labels": labels(c), "State": "running", "Status": "Up 2 minutes",
            "HostConfig": {"NetworkMode": net.name},
            "NetworkSettings": {"Networks": {net.name.clone(): self.endpoint(n)}},
            "Mounts": []
        })
    }

    /// `GET /containers/{id}/json`, about as long as Docker 28's answer for a small
    /// container (every field the engine sends, most of them empty).
    fn inspect(&self, n: usize, pid: u32) -> Value {
        let c = &self.containers[n];
        let net = self.network_of(c);
        let dir = format!("/var/lib/docker/containers/{}", c.id);
        let layer = format!(
            "/var/lib/docker/overlay2/{}",
            hex_id(TAG_IMAGE, n as u64 + 1)
        );
        let sandbox = hex_id(TAG_SANDBOX, n as u64);
        let masked = [
            "/proc/asound",
            "/proc/acpi",
            "/proc/interrupts",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ];
        let readonly = [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ];
        let mut host_config = json!({
            "Binds": null, "ContainerIDFile": "",
            "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": net.name,
            "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null,
            "ConsoleSize": [0, 0], "CapAdd": null, "CapDrop": null, "CgroupnsMode": "private",
            "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null,
            "GroupAdd": null, "IpcMode": "private", "Cgroup": "", "Links": null,
            "OomScoreAdj": 0, "PidMode": "", "Privileged": false, "PublishAllPorts": false,
            "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "",
            "ShmSize": 67_108_864, "Runtime": "runc", "Isolation": "",
            "MaskedPaths": masked, "ReadonlyPaths": readonly
        });
        // The resources, zero: a second object (one macro call this long overflows).
        let resources = json!({
            "CpuShares": 0,
            "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
            "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0,
            "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
            "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null,
            "DeviceRequests": null, "MemoryReservation": 0, "MemorySwap": 0,
            "MemorySwappiness": null, "OomKillDisable": null, "PidsLimit": null,
            "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0
        });
        if let (Value::Object(h), Value::Object(r)) = (&mut host_config, resources) {
            h.extend(r);
        }
        json!({
            "Id": c.id, "Created": CREATED, "Path": "sleep", "Args": ["infinity"],
            "State": {
                "Status": "running", "Running": true, "Paused": false, "Restarting": false,
                "OOMKilled": false, "Dead": false, "Pid": pid, "ExitCode": 0, "Error": "",
                "StartedAt": STARTED, "FinishedAt": "0001-01-01T00:00:00Z"
            },
            "Image": format!("sha256:{}", hex_id(TAG_IMAGE, 0)),
            "ResolvConfPath": format!("{dir}/resolv.conf"),
            "HostnamePath": format!("{dir}/hostname"), "HostsPath": format!("{dir}/hosts"),
            "LogPath": format!("{dir}/{}-json.log", c.id), "Name": format!("/{}", c.name),
            "RestartCount": 0, "Driver": "overlay2", "Platform": "linux", "MountLabel": "",
            "ProcessLabel": "", "AppArmorProfile": "docker-default", "ExecIDs": null,
            "HostConfig": host_config,
            "GraphDriver": {
                "Data": {
                    "ID": c.id, "LowerDir": format!("{layer}-init/diff"),
                    "MergedDir": format!("{layer}/merged"), "UpperDir": format!("{layer}/diff"),
                    "WorkDir": format!("{layer}/work")
                },
                "Name": "overlay2"
            },
            "Mounts": [],
            "Config": {
                "Hostname": &c.id[..12], "Domainname": "", "User": "", "AttachStdin": false,
                "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
                "StdinOnce": false,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sleep", "infinity"], "Image": IMAGE, "Volumes": null, "WorkingDir": "",
                "Entrypoint": null, "OnBuild": null, "Labels": labels(c)
            },
            "NetworkSettings": {
                "SandboxKey": format!("/var/run/docker/netns/{}", &sandbox[..12]),
                "SandboxID": sandbox,
                "Ports": {},
                "Networks": {net.name.clone(): self.endpoint(n)}
            }
        })
    }
}

/// Compose's labels, as a project of services would carry them.
fn labels(c: &Container) -> Value {
    let service = c.name.rsplit_once('-').map_or(c.name.as_str(), |(s, _)| s);
    json!({
        "com.docker.compose.project": "nlbench",
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": c.name.rsplit('-').next().unwrap_or("1"),
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.version": "2.39.1"
    })
}

fn network_json(n: &Network) -> Value {
    let options = match (n.driver, &n.bridge) {
        (Driver::Bridge, Some(b)) => json!({"com.docker.network.bridge.name": b}),
        _ => json!({"parent": LAN_PARENT}),
    };
    json!({
        "Name": n.name, "Id": n.id, "Created": CREATED, "Scope": "local",
        "Driver": n.driver.name(), "EnableIPv4": true, "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [{"Subnet": format!("{}/{}", n.subnet, n.prefix),
                             "Gateway": n.gateway.to_string()}]},
        "Internal": false, "Attachable": false, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false, "Containers": {},
        "Options": options, "Labels": {"com.docker.compose.project": "nlbench"}
    })
}

/// `uname -r`, as the engine reports it.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The bodies the engine answers with, JSON text ready to send.
#[derive(Debug, Clone, Default)]
pub(super) struct Answers {
    pub(super) version: String,
    pub(super) info: String,
    pub(super) networks: String,
    pub(super) containers: String,
    /// `GET /containers/{id or name}/json`.
    pub(super) inspect: HashMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn five_hundred_veths_and_five_hundred_more() {
        let g = Generated::new(500, 500).expect("fits");
        assert_eq!(g.containers.len(), 1000);
        assert_eq!(g.networks.len(), BRIDGE_NETWORKS + 1);
        let unique =
            |f: fn(&Container) -> String| g.containers.iter().map(f).collect::<HashSet<_>>().len();
        assert_eq!(unique(|c| c.id.clone()), 1000);
        assert_eq!(unique(|c| c.name.clone()), 1000);
        assert_eq!(unique(|c| c.ip.to_string()), 1000);
        assert_eq!(unique(|c| c.mac_text()), 1000);
        for c in &g.containers {
            assert_eq!(c.id.len(), 64);
            assert!(c.id.chars().all(|ch| ch.is_ascii_hexdigit()));
            let net = g.network_of(c);
            let mask = u32::MAX << (32 - u32::from(net.prefix));
            assert_eq!(u32::from(c.ip) & mask, u32::from(net.subnet), "{}", c.name);
            assert_ne!(c.ip, net.gateway);
            assert_eq!(c.mac[..2], [0x02, 0x42]);
            assert_eq!(c.mac[2..], c.ip.octets());
            assert_eq!(c.veth.is_some(), net.driver == Driver::Bridge);
        }
        // Veth k belongs to container k; the bridges take them in blocks of 125.
        let c = &g.containers[130];
        assert_eq!(c.veth, Some(130));
        assert_eq!(g.network_of(c).bridge.as_deref(), Some("br1"));
        assert_eq!(c.ip, Ipv4Addr::new(10, 201, 1, 7));
        assert_eq!(c.mac_text(), "02:42:0a:c9:01:07");
        let last = &g.containers[999];
        assert_eq!(last.name, "nlb-lan-0499");
        assert_eq!(last.ip, Ipv4Addr::new(10, 202, 1, 245));
        assert!(Generated::new(1001, 0).is_err());
    }

    #[test]
    fn answers_say_what_netlab_reads() {
        let g = Generated::new(8, 2).expect("fits");
        let pids: Vec<u32> = (0..10).map(|i| 4000 + i).collect();
        let a = g.answers(&pids);
        let version: Value = serde_json::from_str(&a.version).expect("JSON");
        assert_eq!(version["ApiVersion"], API_VERSION);
        assert_eq!(version["Version"], ENGINE_VERSION);
        let info: Value = serde_json::from_str(&a.info).expect("JSON");
        assert_eq!(info["ContainersRunning"], 10);

        let nets: Value = serde_json::from_str(&a.networks).expect("JSON");
        let nets = nets.as_array().expect("an array");
        assert_eq!(nets.len(), 3 + BRIDGE_NETWORKS + 1);
        let net1 = nets
            .iter()
            .find(|n| n["Name"] == "nlbench-net1")
            .expect("net1");
        assert_eq!(net1["Driver"], "bridge");
        assert_eq!(net1["Options"]["com.docker.network.bridge.name"], "br1");
        assert_eq!(net1["IPAM"]["Config"][0]["Subnet"], "10.201.1.0/24");
        let lan = nets
            .iter()
            .find(|n| n["Name"] == "nlbench-lan")
            .expect("lan");
        assert_eq!(lan["Driver"], "macvlan");
        assert_eq!(lan["Options"]["parent"], LAN_PARENT);

        let list: Value = serde_json::from_str(&a.containers).expect("JSON");
        let list = list.as_array().expect("an array");
        assert_eq!(list.len(), 10);
        assert_eq!(list[3]["Id"], g.containers[3].id.as_str());
        assert_eq!(list[3]["Names"][0], "/nlb-app-0003");

        // Container 3 (veth 3: two per bridge network, so on nlbench-net1), by id and name.
        let c = &g.containers[3];
        assert_eq!(a.inspect.len(), 20);
        assert_eq!(a.inspect[&c.id], a.inspect[&c.name]);
        let i: Value = serde_json::from_str(&a.inspect[&c.id]).expect("JSON");
        assert_eq!(i["Id"], c.id.as_str());
        assert_eq!(i["Name"], "/nlb-app-0003");
        assert_eq!(i["State"]["Running"], true);
        assert_eq!(i["State"]["Pid"], 4003);
        assert_eq!(i["Config"]["Image"], IMAGE);
        let ep = &i["NetworkSettings"]["Networks"]["nlbench-net1"];
        assert_eq!(ep["NetworkID"], net1["Id"]);
        assert_eq!(ep["IPAddress"], "10.201.1.3");
        assert_eq!(ep["MacAddress"], "02:42:0a:c9:01:03");
        assert_eq!(ep["Gateway"], "10.201.1.1");
        let size = a.inspect[&c.id].len();
        assert!((3_000..8_000).contains(&size), "{size} bytes");
        let l: Value = serde_json::from_str(&a.inspect["nlb-lan-0001"]).expect("JSON");
        assert_eq!(
            l["NetworkSettings"]["Networks"]["nlbench-lan"]["IPAddress"],
            "10.202.0.3"
        );
    }

    #[test]
    fn ids_look_like_dockers() {
        let a = hex_id(TAG_CONTAINER, 0);
        assert_eq!(a.len(), 64);
        assert_ne!(a, hex_id(TAG_CONTAINER, 1));
        assert_ne!(a, hex_id(TAG_NETWORK, 0));
        assert_eq!(a, hex_id(TAG_CONTAINER, 0));
    }
}
