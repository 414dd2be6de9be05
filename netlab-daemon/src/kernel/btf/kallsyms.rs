//! The kernel's text symbols from `/proc/kallsyms`, for naming the code address a drop
//! report gives (`nft_do_chain+0x46f`).

use std::fs;
use std::path::PathBuf;

use super::BtfError;

/// Where the kernel lists its symbols.
pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// The kernel's text symbols, sorted by address, for turning addresses into `name+0x1f`.
///
/// A host has ~120,000 of them: they are kept in one string with a 16-byte index entry
/// each (about 5 MB here), not as one allocation per name (about twice that).
#[derive(Clone, Debug, Default)]
pub struct Kallsyms {
    /// `(address, start, end)` of each name in `names`, sorted by address, one entry per
    /// address (the first listed).
    index: Vec<(u64, u32, u32)>,
    /// Every kept name, back to back.
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
        if syms.index.iter().all(|&(addr, _, _)| addr == 0) {
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
        self.index.len()
    }

    /// Whether no symbols were kept.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Where function `name` starts and where the next symbol starts (its end, near enough).
    pub fn range_of(&self, name: &str) -> Option<(u64, u64)> {
        let i = self.index.iter().position(|&(_, start, end)| {
            self.names.get(start as usize..end as usize) == Some(name)
        })?;
        let start = self.index[i].0;
        let end = self.index.get(i + 1).map_or(start + 1, |&(a, _, _)| a);
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
        let idx = self.index.partition_point(|&(a, _, _)| a <= addr);
        let &(base, start, end) = self.index.get(idx.checked_sub(1)?)?;
        let name = self.names.get(start as usize..end as usize)?;
        Some(format!("{name}+{:#x}", addr - base))
    }
}

/// Collects kallsyms lines into a [`Kallsyms`].
#[derive(Default)]
struct SymbolTable {
    syms: Kallsyms,
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
        let names = &mut self.syms.names;
        let Ok(start) = u32::try_from(names.len()) else {
            return;
        };
        let Ok(end) = u32::try_from(names.len() + name.len()) else {
            return;
        };
        names.push_str(name);
        self.syms.index.push((addr, start, end));
    }

    /// Sorts by address (stably: the first-listed name of an address is kept).
    fn finish(mut self) -> Kallsyms {
        let index = &mut self.syms.index;
        index.sort_by_key(|&(addr, _, _)| addr);
        index.dedup_by_key(|&mut (addr, _, _)| addr);
        index.shrink_to_fit();
        self.syms.names.shrink_to_fit();
        self.syms
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
