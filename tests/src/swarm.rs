//! A two-node Docker Swarm on one machine, as two hosts would be: two network namespaces
//! joined by a veth (`10.231.9.1/24` and `.2`), each with a `dockerd` of its own.
//!
//! Each engine runs in a mount and UTS namespace of its own as well (entered with
//! `nsenter`/`unshare`, not `ip netns exec`, which remounts /sys and breaks dockerd's
//! cgroup checks): a private tmpfs on `/run` (its own `/var/run/docker.sock`, its own
//! `/var/run/docker/netns` for sandboxes, whose `1-<id>` names would otherwise collide,
//! its own `/run/netlab`), a bpffs instance of its own on `/sys/fs/bpf`, and a hostname of
//! its own. So a netlab in a container of one node sees that node as its host, as on two
//! machines. The test reaches each engine on a second socket under /tmp.
//!
//! Dropping the [`Swarm`] stops both engines (their containers with them), deletes the
//! namespaces and the engines' directories. Traffic stays between the two namespaces and
//! the containers of the engines made here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::host::cmd::{display, run, run_with_stdin, run_with_timeout, stdout_of};
use crate::host::netns::{ip, unique_name, Netns};
use crate::host::process::{signal, wait_deadline};

/// The nodes' addresses on the link between them.
pub const NODE_ADDRS: [&str; 2] = ["10.231.9.1", "10.231.9.2"];
/// How long an engine may take to answer after it starts.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an engine may take to stop after SIGTERM (it stops its containers first).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long copying an image into a node may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// One engine of the swarm.
pub struct Node {
    /// Its hostname (`nlt-...-node1`).
    pub hostname: String,
    /// Its address on the link.
    pub addr: &'static str,
    /// Its network namespace.
    pub netns: Netns,
    /// The socket the test reaches it on.
    pub socket: PathBuf,
    /// Its data root, exec root and the socket's directory.
    dir: PathBuf,
    dockerd: Option<Child>,
}

impl Node {
    /// `docker -H <its socket> <args>`; its stdout, or an error with what it printed.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        run(self.docker_command().args(args))
    }

    /// `docker -H <its socket>`, to add arguments to.
    pub fn docker_command(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H").arg(format!("unix://{}", self.socket.display()));
        c
    }

    /// Runs container `name` of the lab's busybox image (sleeping) on network `net`.
    pub fn sleeper(&self, name: &str, net: &str) -> Result<()> {
        self.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            crate::docker::BUSYBOX_IMAGE,
            "sleep",
            "300",
        ])?;
        Ok(())
    }

    /// The address of container `name` on network `net`, as its engine reports it.
    pub fn ip_on(&self, name: &str, net: &str) -> Result<String> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
        Ok(self
            .docker(&["inspect", "--format", &format, name])?
            .trim()
            .to_owned())
    }

    /// The pid of its dockerd, whose namespaces are the node's.
    pub fn pid(&self) -> Option<u32> {
        self.dockerd.as_ref().map(Child::id)
    }

    /// `nsenter` into the node's mount and network namespaces (as its dockerd), to add the
    /// program and arguments to: what the node itself would run.
    pub fn enter(&self) -> Result<Command> {
        let pid = self.pid().context("the node's dockerd is not running")?;
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid.to_string(), "-m", "-n", "-u", "--"]);
        Ok(c)
    }

    /// Copies `image` from the test machine's engine into this node's.
    pub fn load_image(&self, image: &str) -> Result<()> {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("docker save {image}"))?;
        let stdout = save.stdout.take().context("docker save has no stdout")?;
        let mut load = self.docker_command();
        load.args(["load", "-q"]);
        let shown = display(&load);
        let loaded = run_with_stdin(load, Stdio::from(stdout), LOAD_TIMEOUT)
            .and_then(|out| stdout_of(&shown, &out));
        let saved = save.wait_with_output()?;
        ensure!(
            saved.status.success(),
            "docker save {image}: {}",
            String::from_utf8_lossy(&saved.stderr)
        );
        loaded.with_context(|| format!("loading {image} into {}", self.hostname))?;
        Ok(())
    }

    fn start(tag: &str, index: usize, link_ns: Netns) -> Result<Node> {
        let hostname = unique_name(&format!("{tag}-node{}", index + 1));
        let dir = PathBuf::from(format!("/var/lib/{hostname}"));
        std::fs::create_dir_all(&dir)?;
        let socket = std::env::temp_dir().join(format!("{hostname}.sock"));
        let _ = std::fs::remove_file(&socket);
        // In the node's own mount namespace: /run, the bpffs and the hostname its own.
        let script = format!(
            "set -e; hostname {hostname}; mount -t tmpfs -o mode=755 tmpfs /run; \
             mkdir -p /run/netlab /run/netns; mount -t bpf bpf /sys/fs/bpf; \
             exec dockerd --data-root {data} --exec-root /run/docker-exec \
             --pidfile /run/docker.pid -H unix:///var/run/docker.sock -H unix://{socket} \
             --bip 172.31.{n}.1/24 >{log} 2>&1",
            data = dir.join("data").display(),
            socket = socket.display(),
            n = 201 + index,
            log = dir.join("dockerd.log").display(),
        );
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/var/run/netns/{}", link_ns.name()))
            .args([
                "--",
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
            ])
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null());
        crate::host::cmd::announce(&c);
        let dockerd = c.spawn().with_context(|| display(&c))?;
        let mut node = Node {
            hostname,
            addr: NODE_ADDRS[index],
            netns: link_ns,
            socket,
            dir,
            dockerd: Some(dockerd),
        };
        node.wait_until_it_answers()?;
        Ok(node)
    }

    fn wait_until_it_answers(&mut self) -> Result<()> {
        let deadline = Instant::now() + ENGINE_TIMEOUT;
        loop {
            let mut info = self.docker_command();
            info.args(["info", "--format", "{{.ServerVersion}}"]);
            if run_with_timeout(info, Duration::from_secs(10)).is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            if let Some(child) = self.dockerd.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "dockerd of {} exited ({status}):\n{}",
                        self.hostname,
                        self.log()
                    );
                }
            }
            ensure!(
                Instant::now() < deadline,
                "dockerd of {} does not answer after {} s:\n{}",
                self.hostname,
                ENGINE_TIMEOUT.as_secs(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The end of its dockerd's log, for error messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops its dockerd (SIGTERM: it stops its containers first) and waits for it.
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.dockerd.take() else {
            return Ok(());
        };
        signal(child.id(), libc::SIGTERM)?;
        if wait_deadline(&mut child, STOP_TIMEOUT)?.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "dockerd of {} did not stop within {} s of SIGTERM",
                self.hostname,
                STOP_TIMEOUT.as_secs()
            );
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("cleanup: {e:#}");
        }
        let _ = std::fs::remove_file(&self.socket);
        // Its mounts lived in its own mount namespace, gone with its processes.
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("cleanup: removing {}: {e}", self.dir.display());
        }
    }
}

/// Two engines in two namespaces, node 1 a Swarm manager and node 2 a worker.
pub struct Swarm {
    pub nodes: [Node; 2],
}

impl Swarm {
    /// Makes the namespaces and their link, starts both engines, makes node 1 a manager
    /// (`swarm init --advertise-addr 10.231.9.1`) and joins node 2 to it.
    pub fn create(tag: &str) -> Result<Swarm> {
        let ns1 = Netns::unique(&format!("{tag}-n1"))?;
        let ns2 = Netns::unique(&format!("{tag}-n2"))?;
        let (a, b) = (unique_name("sw"), unique_name("sw"));
        // Interface names are at most 15 bytes: short ones, renamed inside.
        let (a, b) = (short(&a), short(&b));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        for (end, ns, addr) in [(&a, &ns1, NODE_ADDRS[0]), (&b, &ns2, NODE_ADDRS[1])] {
            ip(&["link", "set", end, "netns", ns.name()])?;
            ip(&["-n", ns.name(), "link", "set", end, "name", "link0"])?;
            ip(&[
                "-n",
                ns.name(),
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "link0",
            ])?;
            ip(&["-n", ns.name(), "link", "set", "link0", "up"])?;
        }
        let n1 = Node::start(tag, 0, ns1)?;
        let n2 = Node::start(tag, 1, ns2)?;
        let swarm = Swarm { nodes: [n1, n2] };
        let [n1, n2] = &swarm.nodes;
        n1.docker(&[
            "swarm",
            "init",
            "--advertise-addr",
            n1.addr,
            "--listen-addr",
            &format!("{}:2377", n1.addr),
        ])
        .with_context(|| n1.log())?;
        let token = n1.docker(&["swarm", "join-token", "-q", "worker"])?;
        n2.docker(&[
            "swarm",
            "join",
            "--advertise-addr",
            n2.addr,
            "--token",
            token.trim(),
            &format!("{}:2377", n1.addr),
        ])
        .with_context(|| n2.log())?;
        Ok(swarm)
    }

    /// The manager, where services are created.
    pub fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    /// Each node's Swarm node id, as its engine reports it.
    pub fn node_ids(&self) -> Result<[String; 2]> {
        let id = |n: &Node| -> Result<String> {
            Ok(n.docker(&["info", "--format", "{{.Swarm.NodeID}}"])?
                .trim()
                .to_owned())
        };
        Ok([id(&self.nodes[0])?, id(&self.nodes[1])?])
    }
}

/// The last 12 characters of a unique name, prefixed: a valid interface name.
fn short(name: &str) -> String {
    // Unique names are ASCII.
    let tail = &name[name.len().saturating_sub(12)..];
    format!("sw{}", tail.replace('-', ""))
}

/// Whether `path` exists in the mount namespace of `pid` (through /proc/<pid>/root).
pub fn exists_in(pid: u32, path: &Path) -> bool {
    Path::new(&format!("/proc/{pid}/root"))
        .join(path.strip_prefix("/").unwrap_or(path))
        .exists()
}
