//! Docker-like status text ("Up 5 minutes", "Exited (137) 2 minutes ago") computed from the
//! times the store holds, plus the small RFC 3339 parsing and formatting it needs (Docker
//! reports every time as RFC 3339 in UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::container::{Container, State};

/// The `STATUS` column of `docker ps`, as the engine computes it (moby `State.String`), at
/// `now`. Computed per request from the stored times, so it never goes stale.
pub fn status_text(c: &Container, now: SystemTime) -> String {
    let since = |t: Option<&str>| human_duration(elapsed(t, now));
    match c.state {
        State::Running => {
            let up = since(c.started_at.as_deref());
            match c.health.as_deref() {
                Some("starting") => format!("Up {up} (health: starting)"),
                Some(h) => format!("Up {up} ({h})"),
                None => format!("Up {up}"),
            }
        }
        State::Paused => format!("Up {} (Paused)", since(c.started_at.as_deref())),
        State::Restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(0),
            since(c.finished_at.as_deref())
        ),
        State::Removing => "Removal In Progress".to_string(),
        State::Dead => "Dead".to_string(),
        State::Created => "Created".to_string(),
        State::Exited if c.started_at.is_none() => "Created".to_string(),
        State::Exited => match c.finished_at.as_deref() {
            Some(f) => format!(
                "Exited ({}) {} ago",
                c.exit_code.unwrap_or(0),
                human_duration(elapsed(Some(f), now))
            ),
            None => "Exited".to_string(),
        },
        State::Unknown => "Unknown".to_string(),
    }
}

/// Time from `t` (RFC 3339) to `now`; zero when `t` is absent, unparsable or in the future.
fn elapsed(t: Option<&str>, now: SystemTime) -> Duration {
    t.and_then(parse_rfc3339)
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}

/// Docker's `units.HumanDuration` (go-units), word for word.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`. Docker's zero time (`0001-01-01…`) and
/// anything before 1970 give `None`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac.bytes().take(digits).enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                return None;
            }
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rb[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, u32::try_from(nanos).ok()?))
}

/// Formats a time as RFC 3339 in UTC with whole seconds: `2026-11-24T19:48:22Z`.
pub fn format_rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        parse_rfc3339(s).unwrap()
    }

    fn container(state: State) -> Container {
        Container {
            id: "abc".into(),
            name: "web".into(),
            image: "nginx".into(),
            image_id: "sha256:1".into(),
            state,
            created: "2026-11-24T10:00:00Z".into(),
            started_at: Some("2026-11-24T10:00:00.5Z".into()),
            finished_at: Some("2026-11-24T11:00:00Z".into()),
            exit_code: Some(137),
            ..Default::default()
        }
    }

    #[test]
    fn parses_docker_times() {
        let t = at("2026-11-24T19:48:22.48037724Z");
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.as_secs(), 1_795_549_702);
        assert_eq!(d.subsec_nanos(), 480_377_240);
        assert_eq!(at("1970-01-01T00:00:00Z"), UNIX_EPOCH);
        assert_eq!(
            at("2026-11-24T20:48:22+01:00"),
            UNIX_EPOCH + Duration::from_secs(1_795_549_702)
        );
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None, "Docker's zero time");
        for bad in [
            "",
            "2026-11-24",
            "2026-13-01T00:00:00Z",
            "2026-11-24T19:48:22",
            "2026-11-24T19:48:22.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(format_rfc3339(t), "2026-11-24T19:48:22Z");
        assert_eq!(format_rfc3339(at("2024-02-29T23:59:59Z")), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn human_durations_match_go_units() {
        let s = Duration::from_secs;
        assert_eq!(human_duration(Duration::from_millis(400)), "Less than a second");
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(59)), "59 seconds");
        assert_eq!(human_duration(s(60)), "About a minute");
        assert_eq!(human_duration(s(119)), "About a minute");
        assert_eq!(human_duration(s(5 * 60)), "5 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5400)), "2 hours");
        assert_eq!(human_duration(s(47 * 3600)), "47 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(20 * 86_400)), "2 weeks");
        assert_eq!(human_duration(s(90 * 86_400)), "3 months");
        assert_eq!(human_duration(s(800 * 86_400)), "2 years");
    }

    #[test]
    fn status_text_follows_docker() {
        let now = at("2026-11-24T11:05:00Z");
        assert_eq!(status_text(&container(State::Running), now), "Up About an hour");
        let mut c = container(State::Running);
        c.health = Some("healthy".into());
        assert_eq!(status_text(&c, now), "Up About an hour (healthy)");
        c.health = Some("starting".into());
        assert_eq!(status_text(&c, now), "Up About an hour (health: starting)");
        assert_eq!(
            status_text(&container(State::Exited), now),
            "Exited (137) 5 minutes ago"
        );
        assert_eq!(
            status_text(&container(State::Paused), now),
            "Up About an hour (Paused)"
        );
        assert_eq!(
            status_text(&container(State::Restarting), now),
            "Restarting (137) 5 minutes ago"
        );
        let mut never = container(State::Exited);
        never.started_at = None;
        assert_eq!(status_text(&never, now), "Created");
        assert_eq!(status_text(&container(State::Created), now), "Created");
        assert_eq!(status_text(&container(State::Dead), now), "Dead");
        assert_eq!(
            status_text(&container(State::Removing), now),
            "Removal In Progress"
        );
    }
}
