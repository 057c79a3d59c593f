//! Docker-like status text ("Up 5 minutes", "Exited (137) 2 minutes ago") computed from the
//! container's times, parsed once (see [`Times`]) into [`jiff::Timestamp`]s.

use std::time::Duration;

use common::engine::container::{Container, State};
use jiff::Timestamp;

/// A container's times, parsed once per version of the container (the view cache keeps
/// them), never per request. Docker's zero time and unparsable strings are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    pub created: Option<Timestamp>,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
}

impl Times {
    pub fn of(c: &Container) -> Times {
        Times {
            created: parse(Some(&c.created)),
            started: parse(c.started_at.as_deref()),
            finished: parse(c.finished_at.as_deref()),
        }
    }
}

/// Parses an RFC 3339 time as Docker writes it; before 1970 (Docker's zero time is year 1)
/// counts as absent.
pub fn parse(s: Option<&str>) -> Option<Timestamp> {
    let t: Timestamp = s?.parse().ok()?;
    (t >= Timestamp::UNIX_EPOCH).then_some(t)
}

/// The `STATUS` column of `docker ps`, as the engine computes it (moby `State.String`), at
/// `now`.
pub fn status_text(c: &Container, t: &Times, now: Timestamp) -> String {
    let since = |t: Option<Timestamp>| human_duration(elapsed(t, now));
    match c.state {
        State::Running => {
            let up = since(t.started);
            match c.health.as_deref() {
                Some("starting") => format!("Up {up} (health: starting)"),
                Some(h) => format!("Up {up} ({h})"),
                None => format!("Up {up}"),
            }
        }
        State::Paused => format!("Up {} (Paused)", since(t.started)),
        State::Restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.unwrap_or(0),
            since(t.finished)
        ),
        State::Removing => "Removal In Progress".to_string(),
        State::Dead => "Dead".to_string(),
        State::Created => "Created".to_string(),
        State::Exited if t.started.is_none() => "Created".to_string(),
        State::Exited => match t.finished {
            Some(_) => format!("Exited ({}) {} ago", c.exit_code.unwrap_or(0), since(t.finished)),
            None => "Exited".to_string(),
        },
        State::Unknown => "Unknown".to_string(),
    }
}

/// Time from `t` to `now`; zero when `t` is absent or in the future.
pub fn elapsed(t: Option<Timestamp>, now: Timestamp) -> Duration {
    t.and_then(|t| Duration::try_from(now.duration_since(t)).ok())
        .unwrap_or_default()
}

/// Formats a time as RFC 3339 in UTC with whole seconds: `2026-11-24T19:48:22Z`.
pub fn format_seconds(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second()).unwrap_or(t).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        parse(Some(s)).unwrap()
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

    fn status(c: &Container, now: Timestamp) -> String {
        status_text(c, &Times::of(c), now)
    }

    #[test]
    fn parses_docker_times_once() {
        let t = at("2026-11-24T19:48:22.48037724Z");
        assert_eq!(t.as_second(), 1_795_549_702);
        assert_eq!(t.subsec_nanosecond(), 480_377_240);
        assert_eq!(at("2026-11-24T20:48:22+01:00").as_second(), 1_795_549_702);
        assert_eq!(parse(Some("0001-01-01T00:00:00Z")), None, "Docker's zero time");
        for bad in ["", "2026-11-24", "2026-13-01T00:00:00Z", "2026-11-24T19:48:22"] {
            assert_eq!(parse(Some(bad)), None, "{bad}");
        }
        assert_eq!(format_seconds(t), "2026-11-24T19:48:22Z");
        let c = container(State::Running);
        let times = Times::of(&c);
        assert_eq!(times.created, Some(at("2026-11-24T10:00:00Z")));
        assert_eq!(times.started, Some(at("2026-11-24T10:00:00.5Z")));
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
        assert_eq!(status(&container(State::Running), now), "Up About an hour");
        let mut c = container(State::Running);
        c.health = Some("healthy".into());
        assert_eq!(status(&c, now), "Up About an hour (healthy)");
        c.health = Some("starting".into());
        assert_eq!(status(&c, now), "Up About an hour (health: starting)");
        assert_eq!(
            status(&container(State::Exited), now),
            "Exited (137) 5 minutes ago"
        );
        assert_eq!(
            status(&container(State::Paused), now),
            "Up About an hour (Paused)"
        );
        assert_eq!(
            status(&container(State::Restarting), now),
            "Restarting (137) 5 minutes ago"
        );
        let mut never = container(State::Exited);
        never.started_at = None;
        assert_eq!(status(&never, now), "Created");
        assert_eq!(status(&container(State::Created), now), "Created");
        assert_eq!(status(&container(State::Dead), now), "Dead");
        assert_eq!(status(&container(State::Removing), now), "Removal In Progress");
    }
}
