//! Tracepoint record layouts, read from the `format` files of tracefs (mounted when it is
//! not).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::BtfError;

/// Tracefs mount points, in the order they are tried.
pub const TRACEFS_ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// One field of a tracepoint record, as listed in its tracefs `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceField {
    /// Field name: the last identifier of the declaration (`void * skbaddr` → `skbaddr`,
    /// `char comm[16]` → `comm`).
    pub name: String,
    /// Byte offset in the record (including the common header fields).
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// Reads the fields of tracepoint `category/name` from tracefs.
///
/// Tries each of [`TRACEFS_ROOTS`]; if none works and tracefs is not mounted at
/// `/sys/kernel/tracing`, mounts it there (needs `CAP_SYS_ADMIN`) and tries again.
pub fn tracepoint_fields(category: &str, name: &str) -> Result<Vec<TraceField>, BtfError> {
    let valid = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']);
    if !valid(category) || !valid(name) {
        return Err(BtfError::InvalidTracepoint {
            category: category.to_string(),
            name: name.to_string(),
        });
    }
    let paths: Vec<PathBuf> = TRACEFS_ROOTS
        .iter()
        .map(|root| Path::new(root).join(format!("events/{category}/{name}/format")))
        .collect();
    let mut first_err = None;
    for path in &paths {
        match fs::read_to_string(path) {
            Ok(text) => return fields_of(path, &text),
            Err(err) => {
                first_err.get_or_insert(err);
            }
        }
    }
    let tracefs_events = Path::new(TRACEFS_ROOTS[0]).join("events");
    if !tracefs_events.exists() && mount_tracefs() {
        if let Some(path) = paths.first() {
            match fs::read_to_string(path) {
                Ok(text) => return fields_of(path, &text),
                Err(err) => first_err = Some(err),
            }
        }
    }
    Err(BtfError::TracepointNotFound {
        category: category.to_string(),
        name: name.to_string(),
        tried: paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        source: first_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound)),
    })
}

/// The fields of format text read from `path`, or an error if it lists none.
fn fields_of(path: &Path, text: &str) -> Result<Vec<TraceField>, BtfError> {
    let fields = parse_format(text);
    if fields.is_empty() {
        return Err(BtfError::NoTraceFields {
            path: path.to_path_buf(),
        });
    }
    Ok(fields)
}

/// Mounts tracefs at `/sys/kernel/tracing`; true on success.
fn mount_tracefs() -> bool {
    // SAFETY: every pointer is a NUL-terminated C string literal with static lifetime, and
    // a null `data` pointer is accepted by mount(2) (tracefs needs no options).
    let rc = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        log::debug!(
            "mounting tracefs at /sys/kernel/tracing failed: {}",
            io::Error::last_os_error()
        );
    }
    rc == 0
}

/// Parses the `field:` lines of a tracefs `format` file (other lines are ignored, as are
/// field lines without a name, offset or size).
pub fn parse_format(text: &str) -> Vec<TraceField> {
    text.lines().filter_map(parse_field_line).collect()
}

/// Parses `\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;`.
fn parse_field_line(line: &str) -> Option<TraceField> {
    let rest = line.trim_start().strip_prefix("field:")?;
    let mut parts = rest.split(';');
    let decl = parts.next()?;
    let (mut offset, mut size) = (None, None);
    for part in parts {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse().ok();
        }
    }
    Some(TraceField {
        name: decl_name(decl)?,
        offset: offset?,
        size: size?,
    })
}

/// The declared name in a C declaration: the last identifier, after dropping array suffixes.
fn decl_name(decl: &str) -> Option<String> {
    let mut s = decl.trim_end();
    while let Some(stripped) = s.strip_suffix(']') {
        let open = stripped.rfind('[')?;
        s = stripped.get(..open)?.trim_end();
    }
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let prefix = s.trim_end_matches(is_ident);
    let name = s.get(prefix.len()..)?;
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(name.to_string())
}

/// The field called `name`, if any.
pub fn field<'a>(fields: &'a [TraceField], name: &str) -> Option<&'a TraceField> {
    fields.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::fixtures::kernel_btf;

    const KFREE_SKB_FORMAT: &str = r#"name: kfree_skb
ID: 2310
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:void * skbaddr;	offset:8;	size:8;	signed:0;
	field:void * location;	offset:16;	size:8;	signed:0;
	field:void * rx_sk;	offset:24;	size:8;	signed:0;
	field:unsigned short protocol;	offset:32;	size:2;	signed:0;
	field:enum skb_drop_reason reason;	offset:36;	size:4;	signed:0;

print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, { 12, "NETFILTER_DROP" }, { 128, "MAX" })
"#;

    fn tf(name: &str, offset: u32, size: u32) -> TraceField {
        TraceField {
            name: name.to_string(),
            offset,
            size,
        }
    }

    #[test]
    fn btf_parse_format_kfree_skb() {
        let fields = parse_format(KFREE_SKB_FORMAT);
        assert_eq!(
            fields,
            vec![
                tf("common_type", 0, 2),
                tf("common_flags", 2, 1),
                tf("common_preempt_count", 3, 1),
                tf("common_pid", 4, 4),
                tf("skbaddr", 8, 8),
                tf("location", 16, 8),
                tf("rx_sk", 24, 8),
                tf("protocol", 32, 2),
                tf("reason", 36, 4),
            ]
        );
        assert_eq!(field(&fields, "reason"), Some(&tf("reason", 36, 4)));
        assert_eq!(field(&fields, "nope"), None);
        assert_eq!(
            print_symbolic_value(KFREE_SKB_FORMAT, "NETFILTER_DROP"),
            Some(12)
        );
    }

    #[test]
    fn btf_parse_format_arrays_and_data_loc() {
        let text = "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
                    \tfield:__data_loc char[] name;\toffset:24;\tsize:4;\tsigned:0;\n\
                    \tfield:unsigned long args[6][2];\toffset:32;\tsize:96;\tsigned:0;\n\
                    \tfield:int broken;\toffset:x;\tsize:4;\n\
                    \tfield:[];\toffset:1;\tsize:4;\n";
        assert_eq!(
            parse_format(text),
            vec![tf("comm", 8, 16), tf("name", 24, 4), tf("args", 32, 96)]
        );
    }

    /// The value of `{ N, "NAME" }` in a format's `__print_symbolic`.
    fn print_symbolic_value(text: &str, name: &str) -> Option<u64> {
        let idx = text.find(&format!("\"{name}\""))?;
        let before = text.get(..idx)?;
        let open = before.rfind('{')?;
        before
            .get(open + 1..)?
            .trim()
            .trim_end_matches(',')
            .trim()
            .parse()
            .ok()
    }

    #[test]
    fn btf_kernel_drop_reason_matches_tracefs() {
        let Some(btf) = kernel_btf() else { return };
        let values = btf.enum_values("skb_drop_reason").expect("skb_drop_reason");
        let nf = values
            .iter()
            .find(|(n, _)| n == "SKB_DROP_REASON_NETFILTER_DROP")
            .map(|(_, v)| *v)
            .expect("SKB_DROP_REASON_NETFILTER_DROP");
        eprintln!("SKB_DROP_REASON_NETFILTER_DROP = {nf}");
        let format = TRACEFS_ROOTS.iter().find_map(|root| {
            fs::read_to_string(format!("{root}/events/skb/kfree_skb/format")).ok()
        });
        let Some(format) = format else {
            eprintln!("skipping tracefs comparison: kfree_skb format not readable");
            return;
        };
        assert_eq!(print_symbolic_value(&format, "NETFILTER_DROP"), Some(nf));
        let fields = tracepoint_fields("skb", "kfree_skb").expect("kfree_skb fields");
        assert_eq!(field(&fields, "skbaddr").map(|f| f.size), Some(8));
        assert_eq!(field(&fields, "reason").map(|f| f.size), Some(4));
    }

    #[test]
    fn btf_tracepoint_name_validation() {
        assert!(matches!(
            tracepoint_fields("..", "x"),
            Err(BtfError::InvalidTracepoint { .. })
        ));
        assert!(matches!(
            tracepoint_fields("skb", "a/b"),
            Err(BtfError::InvalidTracepoint { .. })
        ));
        assert!(matches!(
            tracepoint_fields("", "x"),
            Err(BtfError::InvalidTracepoint { .. })
        ));
    }
}
