//! What `ping` says of itself: the totals of its closing statistics.

/// Echo requests sent and replies received, from ping's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PingTotals {
    /// `N packets transmitted`.
    pub transmitted: u64,
    /// `M received` (iputils) or `M packets received` (busybox).
    pub received: u64,
}

/// The totals of ping's `N packets transmitted, M (packets) received, ...` line (iputils or
/// busybox), if `output` has one.
pub fn totals(output: &str) -> Option<PingTotals> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<u64>().ok());
    Some(PingTotals {
        transmitted: numbers.next()??,
        received: numbers.next()??,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(output: &str) -> Option<(u64, u64)> {
        totals(output).map(|t| (t.transmitted, t.received))
    }

    #[test]
    fn ping_summaries() {
        let iputils = "--- 10.0.0.2 ping statistics ---\n\
                       41234 packets transmitted, 41233 received, 0.00243% packet loss, time 3000ms\n";
        assert_eq!(pair(iputils), Some((41234, 41233)));
        let flood = "\n--- 10.200.0.2 ping statistics ---\n20000 packets transmitted, 19998 received, 0% packet loss, time 761ms\n";
        assert_eq!(pair(flood), Some((20000, 19998)));
        let busybox = "--- b ping statistics ---\n1 packets transmitted, 1 packets received, 0% packet loss\n";
        assert_eq!(pair(busybox), Some((1, 1)));
        let errors =
            "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2031ms\n";
        assert_eq!(pair(errors), Some((3, 0)));
        assert_eq!(pair("nothing"), None);
        assert_eq!(pair(""), None);
    }
}
