//! Turning the kernel's monotonic timestamps into wall-clock time, and formatting it.

use std::fmt;

fn now(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Maps `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) to Unix time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns.
    offset_ns: u64,
}

impl Clock {
    /// Measures the offset now (the tightest of a few readings).
    pub fn new() -> Self {
        let mut best = (u64::MAX, 0);
        for _ in 0..5 {
            let m0 = now(libc::CLOCK_MONOTONIC);
            let r = now(libc::CLOCK_REALTIME);
            let m1 = now(libc::CLOCK_MONOTONIC);
            let width = m1.saturating_sub(m0);
            if width < best.0 {
                best = (width, r.saturating_sub(m0 + width / 2));
            }
        }
        Self { offset_ns: best.1 }
    }

    /// The Unix time of a monotonic kernel timestamp.
    pub fn to_unix(&self, mono_ns: u64) -> UnixNanos {
        UnixNanos(mono_ns.saturating_add(self.offset_ns))
    }

    /// The monotonic kernel timestamp of a Unix time (the inverse of [`Clock::to_unix`]).
    pub fn to_monotonic(&self, t: UnixNanos) -> u64 {
        t.0.saturating_sub(self.offset_ns)
    }

    /// The current monotonic time in ns, on the kernel's clock.
    pub fn monotonic_now() -> u64 {
        now(libc::CLOCK_MONOTONIC)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnixNanos(pub u64);

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl UnixNanos {
    fn parts(self) -> (i64, u32, u32, u64, u64, u64, u64) {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
        let sod = secs % 86_400;
        (y, mo, d, sod / 3600, sod / 60 % 60, sod % 60, nanos)
    }

    /// `HH:MM:SS.mmm` (UTC), for human-readable lines.
    pub fn time_of_day(self) -> impl fmt::Display {
        struct Tod(UnixNanos);
        impl fmt::Display for Tod {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (_, _, _, h, m, s, ns) = self.0.parts();
                write!(f, "{h:02}:{m:02}:{s:02}.{:03}", ns / 1_000_000)
            }
        }
        Tod(self)
    }
}

/// RFC 3339 with nanoseconds: `2026-11-27T18:25:24.123456789Z`.
impl fmt::Display for UnixNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, m, s, ns) = self.parts();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{ns:09}Z")
    }
}

impl serde::Serialize for UnixNanos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(UnixNanos(0).to_string(), "1970-01-01T00:00:00.000000000Z");
        // 2026-11-27T18:25:24.123456789Z
        let t = UnixNanos(1_795_803_924_123_456_789);
        assert_eq!(t.to_string(), "2026-11-27T18:25:24.123456789Z");
        assert_eq!(t.time_of_day().to_string(), "18:25:24.123");
        // A leap day.
        assert_eq!(
            UnixNanos(951_782_400 * 1_000_000_000).to_string(),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn clock_maps_monotonic_to_now() {
        let c = Clock::new();
        let wall = now(libc::CLOCK_REALTIME);
        let mapped = c.to_unix(Clock::monotonic_now()).0;
        assert!(mapped.abs_diff(wall) < 50_000_000, "{mapped} vs {wall}");
    }
}
