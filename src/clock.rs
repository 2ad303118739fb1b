//! Wall-clock time as RFC 3339 UTC text (`2026-11-23T13:24:29Z`), and back, without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    format_unix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
    )
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS` with an optional fraction and `Z`; None otherwise.
pub fn parse_unix(text: &str) -> Option<u64> {
    let t = text.trim();
    let num = |a: usize, b: usize| t.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (
        num(0, 4)?,
        num(5, 7)?,
        num(8, 10)?,
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
    );
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (docker's `.State.StartedAt`) into seconds since the
/// epoch with the fraction; None otherwise, and for docker's zero time (year 1).
pub fn parse_unix_f64(text: &str) -> Option<f64> {
    let t = text.trim();
    let secs = parse_unix(t)?;
    let frac = t
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|d| !d.is_empty())
        .and_then(|d| format!("0.{d}").parse::<f64>().ok())
        .unwrap_or(0.0);
    Some(secs as f64 + frac)
}

/// How long ago `text` was, if it parses and is in the past.
pub fn age(text: &str) -> Option<Duration> {
    let then = parse_unix(text)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    now.checked_sub(then).map(Duration::from_secs)
}

// Howard Hinnant's civil calendar algorithms.
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

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(1_795_440_269), "2026-11-23T13:24:29Z");
        assert_eq!(parse_unix("2026-11-23T13:24:29Z"), Some(1_795_440_269));
        assert_eq!(parse_unix("2024-02-29T00:00:00.123Z"), Some(1_709_164_800));
        assert_eq!(parse_unix("nonsense"), None);
        assert_eq!(
            parse_unix_f64("2026-11-23T13:24:29.25Z"),
            Some(1_795_440_269.25)
        );
        assert_eq!(
            parse_unix_f64("2026-11-23T13:24:29Z"),
            Some(1_795_440_269.0)
        );
        assert_eq!(parse_unix_f64("0001-01-01T00:00:00Z"), None);
    }
}
