//! Podman behind the Docker-compatible API: what its own (libpod) API adds.
//!
//! Podman answers the Docker Engine API, but its network inspect carries no bridge-name
//! option, and its bridges are `podman0`, `podman1`, … rather than `br-<id>`: guessed as
//! Docker's, none of them would be found. Podman's own API lists each network with its
//! `network_interface` (the bridge) and its options (`isolate`), on the same socket.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use serde::Deserialize;

use super::NetworkInfo;

/// Where rootful Podman's API service listens by default (`podman.socket`).
pub const DEFAULT_SOCKET: &str = "/run/podman/podman.sock";

/// The name Podman gives itself in `GET /version`'s components.
const COMPONENT: &str = "Podman Engine";

/// Which engine answers the Docker Engine API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Docker Engine (moby).
    #[default]
    Docker,
    /// Podman's Docker-compatible service.
    Podman,
}

impl Product {
    /// Tells Podman by the component it lists in `GET /version`.
    pub fn of(version: &bollard::models::SystemVersion) -> Product {
        let podman = version
            .components
            .iter()
            .flatten()
            .any(|c| c.name == COMPONENT);
        if podman {
            Product::Podman
        } else {
            Product::Docker
        }
    }

    /// Its command-line tool, for the commands netlab suggests.
    pub fn cli(self) -> &'static str {
        match self {
            Product::Docker => "docker",
            Product::Podman => "podman",
        }
    }

    /// As people write it.
    pub fn name(self) -> &'static str {
        match self {
            Product::Docker => "Docker",
            Product::Podman => "Podman",
        }
    }
}

/// One network as `GET /libpod/networks/json` describes it (the fields netlab uses).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LibpodNetwork {
    pub name: String,
    pub id: String,
    pub driver: String,
    /// The bridge device, e.g. `podman1`.
    #[serde(default)]
    pub network_interface: String,
    #[serde(default)]
    pub options: HashMap<String, String>,
    #[serde(default)]
    pub internal: bool,
}

impl LibpodNetwork {
    /// Created with `--opt isolate=true` (or `strict`, in newer netavark).
    pub fn isolated(&self) -> bool {
        self.options
            .get("isolate")
            .is_some_and(|v| v == "true" || v == "strict")
    }
}

/// Gives each of `networks` what Podman's own API says of it: its real bridge, its name
/// as Podman's commands take it (the compatible API calls the default network `bridge`,
/// Podman and its containers' inspects `podman`), and whether it is isolated.
pub fn apply_libpod(networks: &mut [NetworkInfo], libpod: &[LibpodNetwork]) {
    for n in networks.iter_mut() {
        let Some(p) = libpod.iter().find(|p| p.id == n.id) else {
            continue;
        };
        if !p.network_interface.is_empty() {
            n.bridge = p.network_interface.clone();
        }
        n.name = p.name.clone();
        n.isolated = p.isolated();
        n.internal |= p.internal;
    }
}

/// Podman's container inspect names each endpoint's network by name where Docker puts
/// its id (`"NetworkID": "pnet-b"`): the ids of `networks` are put back, so that endpoints
/// and networks match as they do on Docker.
pub fn endpoint_network_ids(networks: &[NetworkInfo], containers: &mut [super::ContainerInfo]) {
    for e in containers.iter_mut().flat_map(|c| c.endpoints.iter_mut()) {
        if networks.iter().any(|n| n.id == e.network_id) {
            continue;
        }
        if let Some(n) = networks
            .iter()
            .find(|n| n.name == e.network_id || n.name == e.network)
        {
            e.network_id = n.id.clone();
        }
    }
}

/// The unix socket of a `DOCKER_HOST`-style address (`unix:///run/podman/podman.sock`);
/// `None` for TCP and other transports.
pub fn unix_socket(host: &str) -> Option<PathBuf> {
    host.strip_prefix("unix://").map(PathBuf::from)
}

/// `GET /libpod/networks/json` on the API socket at `socket`.
pub async fn libpod_networks(socket: &Path) -> anyhow::Result<Vec<LibpodNetwork>> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // v4.0.0 is the oldest libpod API Podman 4 and 5 both serve.
    let path = "/v4.0.0/libpod/networks/json";
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "podman")
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "GET {path} answered {status}: {}",
        String::from_utf8_lossy(&body).trim()
    );
    serde_json::from_slice(&body).with_context(|| format!("reading the answer to GET {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::network_info;

    /// `GET /networks` (compatible API) and `GET /v4.0.0/libpod/networks/json` of Debian's
    /// Podman 4.3.1 with netavark 1.4, recorded: the default network and two of the
    /// test's, one created with `--opt isolate=true`. That one's entry is its own inspect
    /// (`GET /v4.0.0/libpod/networks/pnet-i/json`) from a freshly started service: 4.3.1
    /// drops a network's options from its answers once a container has used the network.
    const COMPAT: &str = r#"[{"Name":"bridge","Id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9","Created":"2026-12-02T02:50:29.024395182Z","Scope":"local","Driver":"bridge","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{"driver":"host-local"},"Config":[{"Subnet":"10.88.0.0/16","Gateway":"10.88.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}},{"Name":"pnet-a","Id":"a99684a4380217a39ab44b96226f41ba755c11a702c662b1a30b3420a636d6ce","Created":"2026-12-02T02:49:59.967340409Z","Scope":"local","Driver":"bridge","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{"driver":"host-local"},"Config":[{"Subnet":"10.89.0.0/24","Gateway":"10.89.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}},{"Name":"pnet-i","Id":"e7eede8b96d4bf529ce04f2df90b0b034c96fe2752a7cb3f57c4a80aa4057f05","Created":"2026-12-02T02:50:00.044612703Z","Scope":"local","Driver":"bridge","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{"driver":"host-local"},"Config":[{"Subnet":"10.89.2.0/24","Gateway":"10.89.2.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{},"Labels":{}}]"#;
    const LIBPOD: &str = r#"[{"name":"pnet-i","id":"e7eede8b96d4bf529ce04f2df90b0b034c96fe2752a7cb3f57c4a80aa4057f05","driver":"bridge","network_interface":"podman3","created":"2026-12-02T02:50:00.044612703Z","subnets":[{"subnet":"10.89.2.0/24","gateway":"10.89.2.1"}],"ipv6_enabled":false,"internal":false,"dns_enabled":true,"options":{"isolate":"true"},"ipam_options":{"driver":"host-local"}},{"name":"podman","id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9","driver":"bridge","network_interface":"podman0","created":"2026-12-02T02:50:29.024395182Z","subnets":[{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}],"ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{"driver":"host-local"}},{"name":"pnet-a","id":"a99684a4380217a39ab44b96226f41ba755c11a702c662b1a30b3420a636d6ce","driver":"bridge","network_interface":"podman1","created":"2026-12-02T02:49:59.967340409Z","subnets":[{"subnet":"10.89.0.0/24","gateway":"10.89.0.1"}],"ipv6_enabled":false,"internal":false,"dns_enabled":true,"ipam_options":{"driver":"host-local"}}]"#;
    /// `GET /containers/pa/json` (compatible API) of the same Podman, recorded and cut
    /// to the fields netlab reads.
    const CONTAINER: &str = r#"{"Id":"bbfcd31bd0e472d004a7dda27806fc2c9bbad759790a0baf1b46e5dd78ed29e1","Name":"/pa","State":{"Status":"running","Running":true,"Pid":27817},"Image":"sha256:57397d7d1adf5265a67b8194ca6014a2787c168226b7669117afbaf702166233","Config":{"Image":"docker.io/netlab/busybox:latest"},"NetworkSettings":{"Networks":{"pnet-a":{"IPAMConfig":null,"Links":null,"Aliases":["bbfcd31bd0e4"],"NetworkID":"pnet-a","EndpointID":"","Gateway":"10.89.0.1","IPAddress":"10.89.0.2","IPPrefixLen":24,"IPv6Gateway":"","GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"92:9b:6b:51:11:cc","DriverOpts":null}}}}"#;

    #[test]
    fn bridges_names_and_isolation_come_from_libpod() {
        let compat: Vec<bollard::models::Network> =
            serde_json::from_str(COMPAT).expect("fixture parses");
        let mut nets: Vec<NetworkInfo> = compat.iter().filter_map(network_info).collect();
        // Guessed as Docker's, the bridges would not exist.
        assert_eq!(nets[1].bridge, "br-a99684a43802");
        let libpod: Vec<LibpodNetwork> = serde_json::from_str(LIBPOD).expect("fixture parses");
        apply_libpod(&mut nets, &libpod);
        let got: Vec<(&str, &str, bool)> = nets
            .iter()
            .map(|n| (n.name.as_str(), n.bridge.as_str(), n.isolated))
            .collect();
        assert_eq!(
            got,
            [
                ("podman", "podman0", false),
                ("pnet-a", "podman1", false),
                ("pnet-i", "podman3", true),
            ]
        );
    }

    #[test]
    fn endpoints_get_their_network_ids() {
        let compat: Vec<bollard::models::Network> =
            serde_json::from_str(COMPAT).expect("fixture parses");
        let mut nets: Vec<NetworkInfo> = compat.iter().filter_map(network_info).collect();
        let libpod: Vec<LibpodNetwork> = serde_json::from_str(LIBPOD).expect("fixture parses");
        apply_libpod(&mut nets, &libpod);
        let c: bollard::models::ContainerInspectResponse =
            serde_json::from_str(CONTAINER).expect("fixture parses");
        let mut cs = vec![crate::docker::container_info(&c).expect("running")];
        assert_eq!(cs[0].endpoints[0].network_id, "pnet-a");
        endpoint_network_ids(&nets, &mut cs);
        assert_eq!(
            cs[0].endpoints[0].network_id,
            "a99684a4380217a39ab44b96226f41ba755c11a702c662b1a30b3420a636d6ce"
        );
    }

    #[test]
    fn podman_is_told_by_its_version_component() {
        let podman: bollard::models::SystemVersion = serde_json::from_str(
            r#"{"Platform":{"Name":"linux/amd64/debian-12"},"Components":[{"Name":"Podman Engine","Version":"4.3.1","Details":{"APIVersion":"4.3.1"}},{"Name":"Conmon","Version":"conmon version 2.1.6"}],"Version":"4.3.1","ApiVersion":"1.41"}"#,
        )
        .expect("fixture parses");
        assert_eq!(Product::of(&podman), Product::Podman);
        let docker: bollard::models::SystemVersion = serde_json::from_str(
            r#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"28.5.2+dfsg4","Details":{}},{"Name":"containerd","Version":"1.7.28"}],"Version":"28.5.2+dfsg4","ApiVersion":"1.51"}"#,
        )
        .expect("fixture parses");
        assert_eq!(Product::of(&docker), Product::Docker);
    }

    #[test]
    fn only_unix_hosts_have_a_socket() {
        assert_eq!(
            unix_socket("unix:///run/podman/podman.sock"),
            Some(PathBuf::from("/run/podman/podman.sock"))
        );
        assert_eq!(unix_socket("tcp://10.0.0.1:2375"), None);
    }
}
