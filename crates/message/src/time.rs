//! The little calendar arithmetic Messages need (a digest's span, a responder's time): RFC 3339
//! UTC times to and from milliseconds since 1970.

/// Milliseconds since 1970 of an RFC 3339 time such as `2024-06-02T20:16:32Z`,
/// `2024-06-02T20:16:32.123Z` or `2024-06-02T22:16:32+02:00`; `None` for anything else.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = padded.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = rest[1..].split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            sign * (hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Now, as RFC 3339 UTC to the second: `2024-06-02T20:16:32Z`.
pub fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    format_rfc3339(ms)
}

/// `2024-06-02T20:16:32Z` (milliseconds dropped).
pub fn format_rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1_000);
    let (days, in_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        in_day / 3_600,
        in_day % 3_600 / 60,
        in_day % 60
    )
}

/// A span as people say it: `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`.
pub fn format_span(ms: i64) -> String {
    let seconds = ms.max(0) / 1_000;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3_600 => match seconds % 60 {
            0 => format!("{} min", seconds / 60),
            s => format!("{} min {s} s", seconds / 60),
        },
        3_600..86_400 => match seconds % 3_600 / 60 {
            0 => format!("{} h", seconds / 3_600),
            m => format!("{} h {m} min", seconds / 3_600),
        },
        _ => match seconds % 86_400 / 3_600 {
            0 => format!("{} d", seconds / 86_400),
            h => format!("{} d {h} h", seconds / 86_400),
        },
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cloudtrail_and_eventbridge_times() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-06-02T20:16:32Z"),
            Some(1_717_359_392_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-06-02T20:16:32.5Z"),
            Some(1_717_359_392_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-06-02T22:16:32.123+02:00"),
            Some(1_717_359_392_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T12:00:00Z"),
            Some(951_825_600_000)
        );
    }

    #[test]
    fn refuses_what_is_not_rfc_3339() {
        for text in [
            "",
            "2024-06-02",
            "2024-06-02 20:16:32",
            "2024-13-02T20:16:32Z",
            "2024-06-02T25:16:32Z",
            "2024-06-02T20:16:32",
            "2024-06-02T20:16:32.Z",
            "2024-06-02T20:16:32+0200",
            "２０２４-06-02T20:16:32Z",
            "yesterday at noon, roughly",
        ] {
            assert_eq!(parse_rfc3339_ms(text), None, "{text}");
        }
    }

    #[test]
    fn formats_back_to_the_second() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2024-06-02T20:16:32Z",
            "2000-02-29T23:59:59Z",
            "1969-12-31T23:59:59Z",
            "2100-03-01T00:00:00Z",
        ] {
            assert_eq!(format_rfc3339(parse_rfc3339_ms(text).unwrap()), text);
        }
        assert_eq!(format_rfc3339(1_717_359_392_999), "2024-06-02T20:16:32Z");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(format_span(0), "0 s");
        assert_eq!(format_span(45_900), "45 s");
        assert_eq!(format_span(120_000), "2 min");
        assert_eq!(format_span(200_000), "3 min 20 s");
        assert_eq!(format_span(7_500_000), "2 h 5 min");
        assert_eq!(format_span(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(format_span(-5), "0 s");
    }
}
