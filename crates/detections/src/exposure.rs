//! Whether address ranges open something to the internet, computed rather than pattern-matched:
//! `0.0.0.0/1` with `128.0.0.0/1` is the whole internet as surely as `0.0.0.0/0` is, and a
//! `/4` is most of it. A set of ranges is open to the internet when together they cover every
//! public address (IPv4 outside the private and reserved blocks; IPv6's global unicast
//! `2000::/3`), or when one of them alone holds at least a `/8`'s worth of public IPv4 addresses
//! (a `/16` of IPv6 global unicast): no team means that many strangers.

use std::net::IpAddr;

/// A range parsed: an inclusive interval of IPv4 or IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interval {
    V4(u128, u128),
    V6(u128, u128),
}

/// IPv4's blocks that are not the public internet (RFC 6890 and friends).
const RESERVED_V4: &[(&str, u8)] = &[
    ("0.0.0.0", 8),
    ("10.0.0.0", 8),
    ("100.64.0.0", 10),
    ("127.0.0.0", 8),
    ("169.254.0.0", 16),
    ("172.16.0.0", 12),
    ("192.0.0.0", 24),
    ("192.0.2.0", 24),
    ("192.168.0.0", 16),
    ("198.18.0.0", 15),
    ("198.51.100.0", 24),
    ("203.0.113.0", 24),
    ("224.0.0.0", 3),
];

/// Public IPv4 addresses a range must hold, alone, to count as open to the internet.
const WIDE_V4: u128 = 1 << 24;
/// Global unicast IPv6 addresses a range must hold, alone, to count as open to the internet.
const WIDE_V6: u128 = 1 << 112;

/// `a.b.c.d/n` or an IPv6 prefix; `None` for anything else (a prefix list, a group).
fn parse(range: &str) -> Option<Interval> {
    let (address, length) = range.trim().split_once('/')?;
    let length: u32 = length.parse().ok()?;
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if length <= 32 => {
            let start = u32::from(v4) as u128 & mask(length, 32);
            Some(Interval::V4(start, start + (1u128 << (32 - length)) - 1))
        }
        IpAddr::V6(v6) if length <= 128 => {
            let start = u128::from(v6) & mask(length, 128);
            let size_minus_one = if length == 0 {
                u128::MAX
            } else {
                (1u128 << (128 - length)) - 1
            };
            Some(Interval::V6(start, start + size_minus_one))
        }
        _ => None,
    }
}

/// The mask of a prefix of `length` bits in a `bits`-bit address.
fn mask(length: u32, bits: u32) -> u128 {
    if length == 0 {
        0
    } else {
        let all = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        all & !((1u128 << (bits - length)) - 1) & all
    }
}

/// The public IPv4 space, as sorted inclusive intervals.
fn public_v4() -> Vec<(u128, u128)> {
    let mut reserved: Vec<(u128, u128)> = RESERVED_V4
        .iter()
        .filter_map(
            |(address, length)| match parse(&format!("{address}/{length}")) {
                Some(Interval::V4(start, end)) => Some((start, end)),
                _ => None,
            },
        )
        .collect();
    reserved.sort_unstable();
    let mut public = Vec::new();
    let mut next = 0u128;
    for (start, end) in reserved {
        if start > next {
            public.push((next, start - 1));
        }
        next = next.max(end + 1);
    }
    if next <= u32::MAX as u128 {
        public.push((next, u32::MAX as u128));
    }
    public
}

/// IPv6 global unicast, `2000::/3`.
fn public_v6() -> Vec<(u128, u128)> {
    let start = 0x2000u128 << 112;
    vec![(start, start + (1u128 << 125) - 1)]
}

/// Sorted, merged intervals.
fn merged(mut intervals: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    intervals.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::new();
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// How many addresses of `space` the interval holds.
fn overlap(space: &[(u128, u128)], (start, end): (u128, u128)) -> u128 {
    space
        .iter()
        .map(|&(a, b)| {
            let (low, high) = (a.max(start), b.min(end));
            if low <= high {
                (high - low).saturating_add(1)
            } else {
                0
            }
        })
        .fold(0u128, u128::saturating_add)
}

/// Whether `union` holds every address of `space`.
fn covers(union: &[(u128, u128)], space: &[(u128, u128)]) -> bool {
    space
        .iter()
        .all(|&(start, end)| union.iter().any(|&(a, b)| a <= start && end <= b))
}

/// Whether one range alone is open to the internet: it holds a `/8`'s worth of public IPv4 (or
/// a `/16` of IPv6 global unicast). `0.0.0.0/0` and `::/0` are; `10.0.0.0/8` is not.
pub fn is_wide(range: &str) -> bool {
    match parse(range) {
        Some(Interval::V4(start, end)) => overlap(&public_v4(), (start, end)) >= WIDE_V4,
        Some(Interval::V6(start, end)) => overlap(&public_v6(), (start, end)) >= WIDE_V6,
        None => false,
    }
}

/// Whether the range holds any public address at all (`10.0.0.0/8` holds none).
pub fn holds_public(range: &str) -> bool {
    match parse(range) {
        Some(Interval::V4(start, end)) => overlap(&public_v4(), (start, end)) > 0,
        Some(Interval::V6(start, end)) => overlap(&public_v6(), (start, end)) > 0,
        None => false,
    }
}

/// Whether the ranges together cover every public address of IPv4, or of IPv6.
pub fn covers_internet<'a>(ranges: impl IntoIterator<Item = &'a str>) -> bool {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for range in ranges {
        match parse(range) {
            Some(Interval::V4(start, end)) => v4.push((start, end)),
            Some(Interval::V6(start, end)) => v6.push((start, end)),
            None => {}
        }
    }
    covers(&merged(v4), &public_v4()) || covers(&merged(v6), &public_v6())
}

/// Whether the text is an IP range at all (a rule may name a prefix list or a group instead).
pub fn is_range(range: &str) -> bool {
    parse(range).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_is_open_when_it_holds_a_slash_8_of_the_internet() {
        for open in [
            "0.0.0.0/0",
            "0.0.0.0/1",
            "128.0.0.0/1",
            "64.0.0.0/2",
            "11.0.0.0/8",
            "::/0",
            "2000::/3",
            "2600::/12",
            "::/1",
        ] {
            assert!(is_wide(open), "{open}");
        }
        for closed in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "203.0.113.7/32",
            "52.0.0.0/9",
            "fd00::/8",
            "2600:1f18::/32",
            "pl-0123",
            "sg-1",
            "0.0.0.0/33",
        ] {
            assert!(!is_wide(closed), "{closed}");
        }
    }

    #[test]
    fn ranges_that_together_cover_the_internet_are_open() {
        assert!(covers_internet(["0.0.0.0/1", "128.0.0.0/1"]));
        assert!(covers_internet(["::/1", "8000::/1"]));
        assert!(covers_internet(["0.0.0.0/0"]));
        // 256 /8s, the private ones left out: still every public address.
        let slash_eights: Vec<String> = (0..=255u32)
            .filter(|first| ![10, 127].contains(first))
            .map(|first| format!("{first}.0.0.0/8"))
            .collect();
        assert!(covers_internet(slash_eights.iter().map(String::as_str)));
        // One public /8 short of it: not the whole internet.
        let short: Vec<&String> = slash_eights.iter().filter(|r| *r != "52.0.0.0/8").collect();
        assert!(!covers_internet(short.iter().map(|r| r.as_str())));
        assert!(!covers_internet(["0.0.0.0/1"]));
        assert!(!covers_internet(["10.0.0.0/8", "pl-1"]));
        assert!(is_range("::/0") && !is_range("pl-1"));
        assert!(!holds_public("203.0.113.8/29") && holds_public("52.1.2.3/32"));
    }
}
