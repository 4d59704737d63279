//! Authorization: is this token let in at this site, now?

use super::model::{Access, AccessRule, AuthStatus, Site, Token};
use chrono::{DateTime, Datelike, NaiveTime, Utc};
use chrono_tz::Tz;

/// Decide on a token. `token` is None when the uid is unknown;
/// `in_other_session` is true when the token already holds an active
/// session that this request is not part of.
pub fn authorize(token: Option<&Token>, site: &Site, now: DateTime<Utc>, in_other_session: bool) -> AuthStatus {
    let Some(token) = token else {
        return AuthStatus::Unknown;
    };
    if token.blocked {
        return AuthStatus::Blocked;
    }
    if token.expires.is_some_and(|e| e <= now) {
        return AuthStatus::Expired;
    }
    let policy = site_admits(site, token.group.as_deref(), now);
    if policy != AuthStatus::Accepted {
        return policy;
    }
    if in_other_session {
        return AuthStatus::ConcurrentTx;
    }
    AuthStatus::Accepted
}

/// Evaluate the site's access policy in the site's own time zone.
pub fn site_admits(site: &Site, group: Option<&str>, now: DateTime<Utc>) -> AuthStatus {
    if site.access == Access::Public {
        return AuthStatus::Accepted;
    }
    let tz: Tz = site.timezone.parse().unwrap_or(Tz::UTC);
    let local = now.with_timezone(&tz);
    let mut group_known_here = false;
    for rule in &site.rules {
        if !rule_covers_group(rule, group) {
            continue;
        }
        group_known_here = true;
        if rule_covers_time(rule, local.weekday(), local.time()) {
            return AuthStatus::Accepted;
        }
    }
    if group_known_here {
        AuthStatus::NotAtThisTime
    } else {
        AuthStatus::NotAtThisLocation
    }
}

fn rule_covers_group(rule: &AccessRule, group: Option<&str>) -> bool {
    rule.groups.is_empty() || group.is_some_and(|g| rule.groups.iter().any(|r| r == g))
}

fn rule_covers_time(rule: &AccessRule, day: chrono::Weekday, time: NaiveTime) -> bool {
    let (from, to) = match (rule.from, rule.to) {
        (None, None) => return rule.days.is_empty() || rule.days.contains(&day),
        (f, t) => (f.unwrap_or(NaiveTime::MIN), t),
    };
    // A window that wraps past midnight belongs to the day it starts on.
    let (in_window, start_day) = match to {
        None => (time >= from, day),
        Some(to) if to > from => (time >= from && time < to, day),
        Some(to) => {
            if time >= from {
                (true, day)
            } else if time < to {
                (true, day.pred())
            } else {
                (false, day)
            }
        }
    };
    in_window && (rule.days.is_empty() || rule.days.contains(&start_day))
}

/// Parse an access window such as `08:00-18:00`.
pub fn parse_window(s: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("window {s:?} must look like 08:00-18:00"))?;
    let p = |x: &str| {
        NaiveTime::parse_from_str(x.trim(), "%H:%M").map_err(|_| format!("{x:?} is not a time of day (HH:MM)"))
    };
    Ok((p(a)?, p(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::TokenKind;
    use chrono::{TimeZone, Weekday};

    fn token(group: Option<&str>) -> Token {
        Token {
            uid: "A".into(),
            kind: TokenKind::Rfid,
            group: group.map(str::to_string),
            blocked: false,
            expires: None,
            note: None,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    fn office() -> Site {
        let (f, t) = parse_window("08:00-18:00").unwrap();
        Site {
            name: "office".into(),
            timezone: "Europe/Berlin".into(),
            access: Access::Private,
            rules: vec![
                AccessRule {
                    groups: vec!["employees".into()],
                    days: vec![],
                    from: Some(f),
                    to: Some(t),
                },
                AccessRule {
                    groups: vec![],
                    days: vec![],
                    from: Some(t),
                    to: Some(f),
                },
            ],
            created_at: Utc::now(),
        }
    }

    #[test]
    fn statuses_in_order_of_precedence() {
        let site = office();
        let noon_berlin = Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap();
        assert_eq!(authorize(None, &site, noon_berlin, false), AuthStatus::Unknown);
        let mut t = token(Some("employees"));
        assert_eq!(authorize(Some(&t), &site, noon_berlin, false), AuthStatus::Accepted);
        assert_eq!(authorize(Some(&t), &site, noon_berlin, true), AuthStatus::ConcurrentTx);
        t.expires = Some(noon_berlin);
        assert_eq!(authorize(Some(&t), &site, noon_berlin, false), AuthStatus::Expired);
        t.blocked = true;
        assert_eq!(authorize(Some(&t), &site, noon_berlin, false), AuthStatus::Blocked);
    }

    #[test]
    fn windows_are_evaluated_in_site_local_time() {
        let site = office();
        let visitor = token(Some("visitors"));
        // 16:30 UTC in July is 18:30 in Berlin: after hours, anyone may charge.
        let evening = Utc.with_ymd_and_hms(2026, 7, 1, 16, 30, 0).unwrap();
        assert_eq!(authorize(Some(&visitor), &site, evening, false), AuthStatus::Accepted);
        // 15:30 UTC is 17:30 local: employees only.
        let afternoon = Utc.with_ymd_and_hms(2026, 7, 1, 15, 30, 0).unwrap();
        assert_eq!(
            authorize(Some(&visitor), &site, afternoon, false),
            AuthStatus::NotAtThisTime
        );
        // 02:00 local (wrapping window) is after hours too.
        let night = Utc.with_ymd_and_hms(2026, 7, 2, 0, 0, 0).unwrap();
        assert_eq!(authorize(Some(&visitor), &site, night, false), AuthStatus::Accepted);
        let employee = token(Some("employees"));
        assert_eq!(
            authorize(Some(&employee), &site, afternoon, false),
            AuthStatus::Accepted
        );
    }

    #[test]
    fn private_site_without_matching_group_is_not_this_location() {
        let mut site = office();
        site.rules.truncate(1);
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap();
        assert_eq!(
            authorize(Some(&token(Some("x"))), &site, at, false),
            AuthStatus::NotAtThisLocation
        );
        assert_eq!(
            authorize(Some(&token(None)), &site, at, false),
            AuthStatus::NotAtThisLocation
        );
    }

    #[test]
    fn weekday_rules_use_the_day_the_window_starts() {
        let (f, t) = parse_window("22:00-06:00").unwrap();
        let site = Site {
            rules: vec![AccessRule {
                groups: vec![],
                days: vec![Weekday::Fri],
                from: Some(f),
                to: Some(t),
            }],
            timezone: "UTC".into(),
            ..office()
        };
        let tok = token(None);
        // 2026-07-04 is a Saturday; 03:00 belongs to Friday night's window.
        let sat_3am = Utc.with_ymd_and_hms(2026, 7, 4, 3, 0, 0).unwrap();
        assert_eq!(authorize(Some(&tok), &site, sat_3am, false), AuthStatus::Accepted);
        let sat_11pm = Utc.with_ymd_and_hms(2026, 7, 4, 23, 0, 0).unwrap();
        assert_eq!(authorize(Some(&tok), &site, sat_11pm, false), AuthStatus::NotAtThisTime);
        assert!(parse_window("8-18").is_err());
    }
}
