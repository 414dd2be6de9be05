//! Turning the kernel's monotonic timestamps into wall-clock time, and formatting it.

use std::cell::Cell;
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

    /// The monotonic time of a Unix time (another host's event, say), by this host's
    /// offset; times before this clock's start are 0.
    pub fn to_monotonic(&self, unix: UnixNanos) -> u64 {
        unix.0.saturating_sub(self.offset_ns)
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
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

/// Seconds since the epoch to (year, month, day, hour, minute, second), UTC.
fn civil_time(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    (y, mo, d, sod / 3600, sod / 60 % 60, sod % 60)
}

impl UnixNanos {
    fn parts(self) -> (i64, u32, u32, u64, u64, u64, u64) {
        let (y, mo, d, h, m, s) = civil_time(self.0 / 1_000_000_000);
        (y, mo, d, h, m, s, self.0 % 1_000_000_000)
    }

    /// The text of [`Display`](fmt::Display) as bytes, without `core::fmt`: the JSON
    /// writer puts one in every event. The date and time of day are cached per thread
    /// for the last whole second, so the calendar math runs about once a second.
    pub fn rfc3339(self) -> [u8; RFC3339_LEN] {
        let secs = self.0 / 1_000_000_000;
        let mut out = [0u8; RFC3339_LEN];
        out[..SECOND_LEN].copy_from_slice(&second_text(secs));
        digits(
            &mut out[SECOND_LEN..RFC3339_LEN - 1],
            self.0 % 1_000_000_000,
        );
        out[RFC3339_LEN - 1] = b'Z';
        out
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

impl std::str::FromStr for UnixNanos {
    type Err = String;

    /// Reads what [`Display`](fmt::Display) writes, `2026-11-27T18:25:24.123456789Z`, also
    /// with fewer fractional digits or none (UTC only: what every netlab writes).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not an RFC 3339 UTC time");
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
            return Err(bad());
        }
        if b[16] != b':' || b.last() != Some(&b'Z') {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Result<u64, String> {
            let t = s.get(r).ok_or_else(bad)?;
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        let frac = match b[19] {
            b'Z' if b.len() == 20 => 0,
            b'.' if (22..=30).contains(&b.len()) => {
                let digits = b.len() - 21;
                num(20..b.len() - 1)? * 10u64.pow(9 - digits as u32)
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        let secs = u64::try_from(days)
            .map_err(|_| bad())?
            .saturating_mul(86_400)
            .saturating_add(h * 3600 + mi * 60 + sec);
        Ok(UnixNanos(
            secs.saturating_mul(1_000_000_000).saturating_add(frac),
        ))
    }
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian (the inverse of
/// [`civil_from_days`], Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Length of the RFC 3339 text of a [`UnixNanos`]: a `u64` of nanoseconds ends in 2554, so
/// the year always has four digits.
pub const RFC3339_LEN: usize = 30;

/// Length of the part of the RFC 3339 text that is the same for a whole second:
/// `2026-11-27T18:25:24.`.
const SECOND_LEN: usize = 20;

thread_local! {
    /// The last whole second formatted on this thread and its text. Events come in time
    /// order, so almost every event falls in the second of the one before it.
    static LAST_SECOND: Cell<(u64, [u8; SECOND_LEN])> =
        const { Cell::new((u64::MAX, [0; SECOND_LEN])) };
}

/// Writes `n` in decimal, zero-padded to fill `out`.
fn digits(out: &mut [u8], mut n: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS.` of `secs` since the epoch, from this thread's cache when it
/// is the second last asked for.
fn second_text(secs: u64) -> [u8; SECOND_LEN] {
    LAST_SECOND.with(|last| {
        let (cached, text) = last.get();
        if cached == secs {
            return text;
        }
        let text = format_second(secs);
        last.set((secs, text));
        text
    })
}

/// The calendar math behind [`second_text`].
fn format_second(secs: u64) -> [u8; SECOND_LEN] {
    let (y, mo, d, h, m, s) = civil_time(secs);
    let mut t = *b"0000-00-00T00:00:00.";
    digits(&mut t[0..4], y.unsigned_abs());
    digits(&mut t[5..7], mo.into());
    digits(&mut t[8..10], d.into());
    digits(&mut t[11..13], h);
    digits(&mut t[14..16], m);
    digits(&mut t[17..19], s);
    t
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
    fn rfc3339_is_read_back() {
        for t in [
            0,
            951_782_400 * 1_000_000_000,
            1_795_803_924_123_456_789,
            4_102_444_799_999_999_999,
        ] {
            let text = UnixNanos(t).to_string();
            assert_eq!(text.parse::<UnixNanos>(), Ok(UnixNanos(t)), "{text}");
        }
        assert_eq!(
            "2026-11-27T18:25:24.5Z".parse::<UnixNanos>(),
            Ok(UnixNanos(1_795_803_924_500_000_000))
        );
        assert_eq!(
            "2026-11-27T18:25:24Z".parse::<UnixNanos>(),
            Ok(UnixNanos(1_795_803_924_000_000_000))
        );
        for bad in [
            "",
            "2026-11-27 18:25:24Z",
            "2026-11-27T18:25:24.123+01:00",
            "2026-13-27T18:25:24Z",
            "2026-11-27T18:25:24.Z",
            "2026-11-27T18:25:24.1234567890Z",
            "20x6-11-27T18:25:24Z",
        ] {
            assert!(bad.parse::<UnixNanos>().is_err(), "{bad}");
        }
        let clock = Clock::new();
        assert_eq!(clock.to_monotonic(clock.to_unix(12_345)), 12_345);
    }

    fn assert_bytes_match_display(times: Vec<u64>) {
        for t in times {
            let t = UnixNanos(t);
            assert_eq!(
                std::str::from_utf8(&t.rfc3339()).expect("ascii"),
                t.to_string()
            );
        }
    }

    /// The byte form is the `Display` text, across the whole range of `u64`.
    #[test]
    fn rfc3339_bytes_match_display() {
        const S: u64 = 1_000_000_000;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut times = vec![
            0,
            999_999_999,
            951_782_400 * S,                 // 2000-02-29
            951_868_799 * S + 999_999_999,   // 2000-02-29T23:59:59.999999999
            1_709_164_800 * S + 123,         // 2024-02-29
            4_107_542_399 * S + 999_999_999, // 2100-02-28T23:59:59 (not a leap year)
            4_107_542_400 * S,               // 2100-03-01
            1_795_803_924_123_456_789,
            u64::MAX,
        ];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            times.push(x);
        }
        assert_bytes_match_display(times);
    }

    /// The cached second is reused only within its second: events in one second, then
    /// across a second, a day and a year boundary, and back in time.
    #[test]
    fn rfc3339_cache_follows_the_second() {
        const S: u64 = 1_000_000_000;
        let base = 1_704_067_199 * S; // 2023-12-31T23:59:59
        let mut times = Vec::new();
        for step in [0, 1, 500_000_000, 999_999_999, S, S + 1, 2 * S - 1, 2 * S] {
            times.push(base + step);
        }
        times.extend([base, base + 3 * S, base + 7, 0, 0, S - 1, S, base]);
        assert_bytes_match_display(times);
    }

    #[test]
    fn clock_maps_monotonic_to_now() {
        let c = Clock::new();
        let wall = now(libc::CLOCK_REALTIME);
        let mapped = c.to_unix(Clock::monotonic_now()).0;
        assert!(mapped.abs_diff(wall) < 50_000_000, "{mapped} vs {wall}");
    }
}
