//! The kernel's text symbols from `/proc/kallsyms`, for naming the code address a drop
//! report gives (`nft_do_chain+0x46f`).

use std::fs;
use std::path::PathBuf;

use super::BtfError;

/// Where the kernel lists its symbols.
pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// The kernel's text symbols, sorted by address, for turning addresses into `name+0x1f`.
///
/// A host has ~120,000 of them: they are kept in one string with 8 bytes of index per
/// address (about 4 MB here), not as one allocation per name (about 10 MB).
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    /// The lowest address kept; addresses are kept as offsets from it (kernel and module
    /// text lie within 2 GiB of each other).
    base: u64,
    /// Each distinct address's offset from `base`, ascending (the first-listed name of an
    /// address is kept).
    offsets: Vec<u32>,
    /// Where each address's name starts in `names`; it ends where the next one starts
    /// (one more entry than `offsets`: the end of the last name).
    starts: Vec<u32>,
    /// The kept names, back to back, in address order.
    names: String,
}

impl Kallsyms {
    /// Reads [`KALLSYMS_PATH`] line by line. Errors if it lists no text symbols, or if all
    /// addresses are zero because `kernel.kptr_restrict` hides them from this process.
    pub fn load() -> Result<Self, BtfError> {
        use std::io::BufRead;
        let read_err = |source| BtfError::Read {
            path: PathBuf::from(KALLSYMS_PATH),
            source,
        };
        let file = fs::File::open(KALLSYMS_PATH).map_err(read_err)?;
        let mut reader = std::io::BufReader::with_capacity(64 * 1024, file);
        let mut builder = SymbolTable::default();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(read_err)? == 0 {
                break;
            }
            builder.line(&line);
        }
        let syms = builder.finish();
        if syms.is_empty() {
            return Err(BtfError::NoKallsyms);
        }
        if syms.base == 0 && syms.offsets.last() == Some(&0) {
            return Err(BtfError::KallsymsHidden);
        }
        Ok(syms)
    }

    /// Parses `/proc/kallsyms` text, keeping text symbols (types `t`, `T`, `w`, `W`).
    /// Malformed lines are skipped; a trailing `[module]` column is ignored.
    pub fn parse(text: &str) -> Kallsyms {
        let mut builder = SymbolTable::default();
        text.lines().for_each(|line| builder.line(line));
        builder.finish()
    }

    /// Number of distinct symbol addresses kept.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no symbols were kept.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The name of the `i`-th address.
    fn name(&self, i: usize) -> Option<&str> {
        let (start, end) = (*self.starts.get(i)?, *self.starts.get(i + 1)?);
        self.names.get(start as usize..end as usize)
    }

    /// The `i`-th address.
    fn addr(&self, i: usize) -> Option<u64> {
        self.offsets.get(i).map(|&o| self.base + u64::from(o))
    }

    /// Where function `name` starts and where the next symbol starts (its end, near enough).
    pub fn range_of(&self, name: &str) -> Option<(u64, u64)> {
        let i = (0..self.len()).find(|&i| self.name(i) == Some(name))?;
        let start = self.addr(i)?;
        let end = self.addr(i + 1).unwrap_or(start + 1);
        Some((start, end))
    }

    /// The address ranges of `icmp_rcv` and `ping_rcv`, where kernels without drop reasons
    /// free the echo replies a raw-socket ping already took (see `DropConfig::quiet_ranges`).
    pub fn echo_reply_frees(&self) -> [u64; 4] {
        let (a, b) = self.range_of("icmp_rcv").unwrap_or((0, 0));
        let (c, d) = self.range_of("ping_rcv").unwrap_or((0, 0));
        [a, b, c, d]
    }

    /// `name+0x1f` for the nearest symbol at or below `addr` (`name+0x0` on an exact hit);
    /// `None` if `addr` is below the first symbol.
    pub fn symbolize(&self, addr: u64) -> Option<String> {
        let off = addr.checked_sub(self.base)?;
        let idx = self.offsets.partition_point(|&o| u64::from(o) <= off);
        let i = idx.checked_sub(1)?;
        let (at, name) = (self.addr(i)?, self.name(i)?);
        Some(format!("{name}+{:#x}", addr - at))
    }
}

/// Collects kallsyms lines into a [`Kallsyms`].
#[derive(Default)]
struct SymbolTable {
    /// `(address, start, end)` of each text symbol's name in `names`, as listed.
    index: Vec<(u64, u32, u32)>,
    names: String,
}

impl SymbolTable {
    /// Keeps the line's symbol if it is a text symbol and fits the index.
    fn line(&mut self, line: &str) {
        let mut cols = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (cols.next(), cols.next(), cols.next()) else {
            return;
        };
        if !matches!(kind, "t" | "T" | "w" | "W") {
            return;
        }
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            return;
        };
        let Ok(start) = u32::try_from(self.names.len()) else {
            return;
        };
        let Ok(end) = u32::try_from(self.names.len() + name.len()) else {
            return;
        };
        self.names.push_str(name);
        self.index.push((addr, start, end));
    }

    /// Sorts by address (stably: the first-listed name of an address is kept) and packs
    /// what is kept: 8 bytes per address instead of 16, and only the kept names, in
    /// address order (~1 MB less for the ~120,000 text symbols of a distribution kernel).
    /// An address more than 4 GiB above the lowest one cannot be kept; kernel and module
    /// text never are.
    fn finish(mut self) -> Kallsyms {
        self.index.sort_by_key(|&(addr, _, _)| addr);
        self.index.dedup_by_key(|&mut (addr, _, _)| addr);
        let base = self.index.first().map_or(0, |&(addr, _, _)| addr);
        let mut out = Kallsyms {
            base,
            offsets: Vec::with_capacity(self.index.len()),
            starts: Vec::with_capacity(self.index.len() + 1),
            names: String::new(),
        };
        let kept_len: usize = self
            .index
            .iter()
            .map(|&(_, start, end)| (end - start) as usize)
            .sum();
        out.names.reserve_exact(kept_len);
        for &(addr, start, end) in &self.index {
            let (Ok(offset), Ok(at)) = (u32::try_from(addr - base), u32::try_from(out.names.len()))
            else {
                continue;
            };
            let Some(name) = self.names.get(start as usize..end as usize) else {
                continue;
            };
            out.offsets.push(offset);
            out.starts.push(at);
            out.names.push_str(name);
        }
        out.starts
            .push(u32::try_from(out.names.len()).unwrap_or(u32::MAX));
        out.offsets.shrink_to_fit();
        out.starts.shrink_to_fit();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btf_kallsyms_parse_and_symbolize() {
        let text = "\
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t helper
ffffffff81001000 D some_data
ffffffff81000200 W weak_fn
ffffffffc0000000 t mod_fn\t[veth]
garbage line
";
        let syms = Kallsyms::parse(text);
        assert_eq!(syms.len(), 4);
        assert_eq!(syms.symbolize(0xffffffff80ffffff), None);
        assert_eq!(
            syms.symbolize(0xffffffff81000000).as_deref(),
            Some("_stext+0x0")
        );
        assert_eq!(
            syms.symbolize(0xffffffff8100011f).as_deref(),
            Some("helper+0x1f")
        );
        // Data symbols are dropped, so this resolves to the weak function.
        assert_eq!(
            syms.symbolize(0xffffffff81001004).as_deref(),
            Some("weak_fn+0xe04")
        );
        assert_eq!(
            syms.symbolize(0xffffffffc0000010).as_deref(),
            Some("mod_fn+0x10")
        );
        assert_eq!(Kallsyms::parse("").symbolize(1), None);
        // A function's range ends where the next kept symbol starts.
        assert_eq!(
            syms.range_of("helper"),
            Some((0xffffffff81000100, 0xffffffff81000200))
        );
        assert_eq!(
            syms.range_of("mod_fn"),
            Some((0xffffffffc0000000, 0xffffffffc0000001))
        );
        assert_eq!(syms.range_of("_text"), None, "a second name of an address");
        assert_eq!(syms.range_of("some_data"), None);
        // Only the kept names stay: `_text` (same address as `_stext`) and data are gone.
        assert_eq!(syms.names, "_stexthelperweak_fnmod_fn");
        // An address more than 4 GiB above the lowest is not kept.
        let far = Kallsyms::parse("0000000000001000 T low\nffffffff81000000 T high\n");
        assert_eq!(far.len(), 1);
        assert_eq!(
            far.symbolize(0xffffffff81000010).as_deref(),
            Some("low+0xffffffff80fff010")
        );
    }

    #[test]
    fn btf_kernel_kallsyms() {
        match Kallsyms::load() {
            Ok(syms) => {
                assert!(!syms.is_empty());
                eprintln!("kallsyms: {} text symbols", syms.len());
            }
            Err(e) => eprintln!("skipping: {e}"),
        }
    }
}
