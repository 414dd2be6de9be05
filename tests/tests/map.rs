//! The map page in a real headless Chromium (Debian's `chromium`, driven by npm's
//! `playwright-core` from `tests/browser/`), served by a real `netlab daemon --listen` on
//! loopback, over the course's lab on a real Docker engine. Run by `cargo xtask test`:
//! `cargo test -p netlab-tests --test map -- --test-threads=1`.
//!
//! Packets go only between this test's containers: pinger → AppDev and AppDev → AppProd
//! (a few each, `ping -c`), AppDev → AppProd over the hand-made leg, and a bounded flood
//! (`ping -f -c … -w …`, iputils ping run in pinger's namespace) to AppDev. The page must
//! request nothing but the daemon's own address.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use netlab_tests::browser::Browser;
use netlab_tests::daemon::{free_loopback_port, DaemonPaths};
use netlab_tests::docker::{add_hand_made_leg, docker, subnet_host, CourseLab};
use netlab_tests::{browser_or_skip, docker_or_skip};
use serde_json::Value;

/// How long the map may take to show a change (a rescan, a journey that times out).
const SHOWN: Duration = Duration::from_secs(15);

fn subnet_of(network: &str) -> Result<String> {
    let s = docker(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        network,
    ])?;
    Ok(s.trim().to_owned())
}

fn ip_on(container: &str, network: &str) -> Result<String> {
    let f = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    Ok(docker(&["inspect", "--format", &f, container])?
        .trim()
        .to_owned())
}

/// The selector of the edge of `src` → `dst` in `state`.
fn edge(src: &str, dst: &str, state: &str) -> String {
    format!(r#"li.edge[data-src="{src}"][data-dst="{dst}"][data-state="{state}"]"#)
}

/// The course's lab on the map: boxes and hooks, pings answered and dropped (with the
/// rule), diagnose from the page, the hand-made leg and its ping, a ping flood, a removed
/// container; and nothing requested anywhere but the daemon.
#[test]
fn the_course_lab_on_the_map() -> Result<()> {
    let bin = docker_or_skip!();
    browser_or_skip!();
    let lab = CourseLab::new()?;
    let (appdev, pinger, appprod) = (
        lab.appdev.name.clone(),
        lab.pinger.name.clone(),
        lab.appprod.name.clone(),
    );
    let (devops, prod) = (lab.devops.name.clone(), lab.prod.name.clone());
    let paths = DaemonPaths::new(&bin)?;
    let port = free_loopback_port()?;
    let listen = format!("127.0.0.1:{port}");
    let _daemon = paths.start(&["--listen", &listen])?;
    let url = format!("http://{listen}/");
    let mut b = Browser::start()?;
    b.open(&url)?;

    // The boxes: each network with its bridge, its containers and their veths.
    for (net, c) in [(&devops, &appdev), (&devops, &pinger), (&prod, &appprod)] {
        b.wait(
            &format!(r#"[data-network="{net}"] [data-container="{c}"]"#),
            SHOWN,
        )?;
    }
    for net in [&lab.devops, &lab.prod] {
        b.wait(
            &format!(
                r#"[data-network="{}"] [data-iface="{}"][data-role="bridge"]"#,
                net.name,
                net.bridge()
            ),
            SHOWN,
        )?;
    }
    let veth = lab.appdev.host_veth()?;
    b.wait(
        &format!(
            r#"[data-container="{appdev}"] [data-iface="{veth}"][data-role="container-veth"]"#
        ),
        SHOWN,
    )?;
    let status = b.text("#status")?;
    ensure!(
        status.contains("Docker engine connected") && status.contains("events/s"),
        "status line: {status}"
    );

    // pinger → AppDev, answered.
    let appdev_ip = ip_on(&appdev, &devops)?;
    lab.pinger.ping(&appdev_ip, 3)?;
    b.wait(&edge(&pinger, &appdev, "answered"), SHOWN)?;

    // AppDev → AppProd, dropped by Docker's rule, named with its meaning.
    let appprod_ip = ip_on(&appprod, &prod)?;
    lab.appdev
        .exec(&["ping", "-c", "2", "-W", "1", &appprod_ip])?;
    let dropped = edge(&appdev, &appprod, "dropped");
    b.wait(&dropped, SHOWN)?;
    let details = format!("{dropped} .edge-details");
    let deadline = Instant::now() + SHOWN;
    let text = loop {
        let t = b.text(&details)?;
        if t.contains("Docker's") || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    ensure!(
        text.contains("NETFILTER_DROP")
            && text.contains("rule: ")
            && (text.contains("PREROUTING") || text.contains("DOCKER-ISOLATION-STAGE-2"))
            && text.contains(&appprod_ip)
            && text.contains("Docker's"),
        "the dropped edge's details: {text}"
    );

    // Its details, and diagnose from the page.
    b.click(&dropped)?;
    b.wait("#details:not([hidden]) #details-journeys li", SHOWN)?;
    let rule = b.text("#details-drop .rule")?;
    ensure!(text.contains(&rule), "details rule {rule:?} vs {text}");
    b.click("#diagnose")?;
    b.wait("#verdict .one-verdict", Duration::from_secs(40))?;
    let verdict = b.eval("document.querySelector('#verdict .one-verdict').dataset.verdict")?;
    let message = b.text("#verdict")?;
    ensure!(
        verdict == "dropped" && message.contains("not reachable") && message.contains("fix: "),
        "diagnose from the page: {verdict} {message}"
    );

    // The hand-made leg appears, and a ping over it turns the edge answered.
    let (leg_ip, leg_cidr) = subnet_host(&subnet_of(&devops)?, 200)?;
    let leg = add_hand_made_leg(&lab.devops.bridge(), &lab.appprod, &leg_cidr)?;
    let leg_el = format!(
        r#"[data-network="{devops}"] [data-iface="{}"][data-role="manual-veth"]"#,
        leg.name
    );
    b.wait(&leg_el, SHOWN)?;
    // The leg joins the bridge before its far end is moved into AppProd: until the next
    // scan names that end, the map rightly says "unknown end".
    let want = format!("{} → {appprod} eth1", leg.name);
    let deadline = Instant::now() + SHOWN;
    let leg_text = loop {
        let t = b.text(&leg_el)?;
        if t.contains(&want) || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    ensure!(leg_text.contains(&want), "the leg reads {leg_text:?}");
    lab.appdev.ping(&leg_ip.to_string(), 2)?;
    b.wait(&edge(&appdev, &appprod, "answered"), SHOWN)?;

    // A flood (bounded: 20,000 pings) from pinger to AppDev: the page keeps drawing, a few
    // maps a second, and counts every ping.
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &pinger])?;
    // It starts half a second into the 3 s the page is measured, and lasts about a second
    // (iputils ping sends as fast as the replies come, 20,000 to 40,000 a second here).
    let flood = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "sleep 0.5; exec nsenter -t {} -n ping -q -i 0.0002 -c 20000 -w 8 {appdev_ip}",
            pid.trim()
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("flood ping")?;
    let f = b.frames(Duration::from_secs(3))?;
    let flood_out = flood.wait_with_output()?;
    let flood_text = String::from_utf8_lossy(&flood_out.stdout);
    println!("under the flood: {f}; ping said: {}", flood_text.trim());
    let received: u64 = flood_text
        .split(" received")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let updates = f["updates"].as_u64().unwrap_or(0);
    ensure!(
        received > 5000,
        "the flood should have carried thousands of pings: {flood_text}"
    );
    // About 3 maps a second, each carrying thousands of pings, and the page keeps up.
    ensure!(
        (3..=15).contains(&updates),
        "maps drawn during 3 s of flood: {updates} (expected a few a second): {f}"
    );
    ensure!(
        f["frames"].as_u64().unwrap_or(0) >= 20
            && f["max_ms"].as_f64().unwrap_or(f64::MAX) < 1000.0,
        "the page froze under the flood: {f}"
    );
    // Once it is over, the edge counts them (ping's own count is the witness).
    let answered_js = format!(
        "(window.netlabMap.map.edges.find(e => e.src === '{pinger}' && e.dst === '{appdev}') || {{}}).answered || 0"
    );
    let deadline = Instant::now() + SHOWN;
    let answered = loop {
        let n = b.eval(&answered_js)?.as_u64().unwrap_or(0);
        if n >= received || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("pinger → AppDev answered on the map: {answered}; ping received {received}");
    ensure!(
        answered as f64 >= received as f64 * 0.95,
        "the map counted {answered} answered pings of {received}"
    );

    // A removed container leaves the map (and its edges with it).
    let pinger_c = lab.pinger;
    pinger_c.remove()?;
    b.gone(&format!(r#"[data-container="{pinger}"]"#), SHOWN)?;
    b.gone(&format!(r#"li.edge[data-src="{pinger}"]"#), SHOWN)?;

    // A page of another origin cannot make the daemon act (the browser asks first, the
    // daemon never agrees).
    let cross = b.eval(&format!(
        "fetch('http://localhost:{port}/v1/diagnose', {{method: 'POST', \
         headers: {{'Content-Type': 'application/json'}}, \
         body: JSON.stringify({{src: '{appdev}', dst: '{appprod}'}})}}) \
         .then(r => 'sent ' + r.status, e => 'blocked')"
    ))?;
    ensure!(cross == "blocked", "a cross-origin diagnose: {cross}");

    if let Some(path) = std::env::var_os("NETLAB_MAP_SCREENSHOT") {
        b.screenshot(&PathBuf::from(path))?;
    }

    // Nothing but the daemon was asked for anything.
    let (urls, errors) = b.requests()?;
    let ours =
        |u: &String| u.starts_with(&url) || u.starts_with(&format!("http://localhost:{port}/"));
    ensure!(
        !urls.is_empty() && urls.iter().all(ours),
        "requests beyond the daemon: {:?}",
        urls.iter().filter(|u| !ours(u)).collect::<Vec<_>>()
    );
    let unexpected: Vec<&String> = errors
        .iter()
        .filter(|e| !e.contains("CORS") && !e.contains("localhost"))
        .collect();
    ensure!(unexpected.is_empty(), "console errors: {unexpected:?}");
    drop(leg);
    Ok(())
}

/// `--read-only`: the page shows, the diagnose button is off and the API refuses.
#[test]
fn a_read_only_daemon_shows_and_does_not_act() -> Result<()> {
    let bin = docker_or_skip!();
    browser_or_skip!();
    let lab = CourseLab::new()?;
    let paths = DaemonPaths::new(&bin)?;
    let port = free_loopback_port()?;
    let listen = format!("127.0.0.1:{port}");
    let _daemon = paths.start(&["--listen", &listen, "--read-only"])?;
    let mut b = Browser::start()?;
    b.open(&format!("http://{listen}/"))?;
    let appdev_ip = ip_on(&lab.appdev.name, &lab.devops.name)?;
    lab.pinger.ping(&appdev_ip, 2)?;
    let e = edge(&lab.pinger.name, &lab.appdev.name, "answered");
    b.wait(&e, SHOWN)?;
    b.click(&e)?;
    b.wait("#details:not([hidden])", SHOWN)?;
    let disabled: Value = b.eval("document.getElementById('diagnose').disabled")?;
    ensure!(disabled == true, "the diagnose button is on");
    ensure!(b.text("#status")?.contains("read-only"));
    let answer = b.eval(&format!(
        "fetch('/v1/diagnose', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, \
         body: JSON.stringify({{src: '{}', dst: '{}'}})}}).then(r => r.status)",
        lab.pinger.name, lab.appdev.name
    ))?;
    ensure!(answer == 403, "POST /v1/diagnose answered {answer}");
    Ok(())
}
