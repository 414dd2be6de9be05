//! Small parsers of the tools' output: words, numbers, JSON paths.

/// The number after the first occurrence of word `key` in `text` (`sent 123 errors 0`).
pub(super) fn word_after(text: &str, key: &str) -> Option<f64> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == key)?;
    words.next()?.parse().ok()
}

/// The JSON number at the start of `s` (after optional blanks).
pub(super) fn number_at(s: &str) -> Option<f64> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The number at `"k1"…"k2"…"kn":` in a JSON text: each key is looked for after the
/// previous one (enough for criterion's files and netlab's summary, whose keys are unique
/// along such a path).
pub(super) fn json_number(json: &str, path: &[&str]) -> Option<f64> {
    let mut rest = json;
    for key in path {
        let quoted = format!("\"{key}\"");
        rest = &rest[rest.find(&quoted)? + quoted.len()..];
    }
    number_at(rest.trim_start().strip_prefix(':')?)
}

/// The numbers of the array at `"key":[…]`.
pub(super) fn json_numbers(json: &str, key: &str) -> Vec<f64> {
    let quoted = format!("\"{key}\"");
    let Some(at) = json.find(&quoted) else {
        return Vec::new();
    };
    let rest = json[at + quoted.len()..].trim_start();
    let Some(rest) = rest.strip_prefix(':').map(str::trim_start) else {
        return Vec::new();
    };
    let Some(rest) = rest.strip_prefix('[') else {
        return Vec::new();
    };
    let Some(end) = rest.find(']') else {
        return Vec::new();
    };
    rest[..end].split(',').filter_map(number_at).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_criterion_files() {
        let est = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1776574.8,"upper_bound":1923277.4},"point_estimate":1848870.3,"standard_error":37509.2},"median":{"point_estimate":1790555.3}}"#;
        assert_eq!(
            json_number(est, &["mean", "point_estimate"]),
            Some(1848870.3)
        );
        assert_eq!(
            json_number(est, &["mean", "confidence_interval", "upper_bound"]),
            Some(1923277.4)
        );
        assert_eq!(
            json_number(est, &["median", "point_estimate"]),
            Some(1790555.3)
        );
        assert_eq!(json_number(est, &["slope"]), None);
        let sample = r#"{"sampling_mode":"Linear","iters":[16.0,32.0],"times":[2.0e7,4.1e7]}"#;
        assert_eq!(json_numbers(sample, "iters"), [16.0, 32.0]);
        assert_eq!(json_numbers(sample, "times"), [2.0e7, 4.1e7]);
        assert!(json_numbers("{}", "iters").is_empty());
        let bench = r#"{"throughput":{"Elements":1000},"full_id":"pipeline/mixed"}"#;
        assert_eq!(
            json_number(bench, &["throughput", "Elements"]),
            Some(1000.0)
        );
    }
}
