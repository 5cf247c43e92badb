//! The hybrid logical clock (HLC) that stamps every operation.
//!
//! A timestamp is `(millis, counter, node)`. `millis` follows the wall clock when it moves
//! forward, the counter orders events inside one millisecond or while the wall clock stands
//! still or runs backwards, and `node` (the store id) breaks the last ties. Timestamps from one
//! clock are strictly increasing, and a clock that has seen a remote timestamp never issues a
//! smaller one, so "last writer" is decided by this order, never by a wall clock alone.
//!
//! On the wire a timestamp is a string, `"<millis:013>-<counter:05>-<node>"`, which compares
//! like the timestamp as long as `millis` stays within 13 digits (until the year 2286).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One hybrid-logical-clock timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Wall-clock milliseconds since the Unix epoch (or the largest seen so far).
    pub millis: u64,
    /// Logical counter inside one `millis`.
    pub counter: u32,
    /// The node (store) that issued it; breaks ties between nodes.
    pub node: u64,
}

impl Hlc {
    /// A fresh clock for `node` that has seen nothing yet.
    pub fn new(node: u64) -> Self {
        Hlc {
            millis: 0,
            counter: 0,
            node,
        }
    }

    /// Issues the next local timestamp at wall time `now_ms`, and advances the clock to it.
    pub fn tick(&mut self, now_ms: u64) -> Hlc {
        if now_ms > self.millis {
            self.millis = now_ms;
            self.counter = 0;
        } else {
            self.counter = self.counter.saturating_add(1);
        }
        *self
    }

    /// Merges a timestamp received from elsewhere, so later local ticks order after it.
    pub fn observe(&mut self, remote: Hlc, now_ms: u64) {
        let millis = self.millis.max(remote.millis).max(now_ms);
        self.counter = if millis == self.millis && millis == remote.millis {
            self.counter.max(remote.counter).saturating_add(1)
        } else if millis == self.millis {
            self.counter.saturating_add(1)
        } else if millis == remote.millis {
            remote.counter.saturating_add(1)
        } else {
            0
        };
        self.millis = millis;
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl Hlc {
    /// The string form, `{millis:013}-{counter:05}-{node}`, written on the stack: the hub
    /// writes one for every operation and every field it stamps, and the formatting
    /// machinery's padding costs several times more.
    fn text(&self) -> HlcText {
        let mut text = HlcText {
            buf: [0; 54],
            len: 0,
        };
        text.push_number(self.millis, 13);
        text.push(b'-');
        text.push_number(u64::from(self.counter), 5);
        text.push(b'-');
        text.push_number(self.node, 1);
        text
    }
}

/// A timestamp's string form (at most 20 + 1 + 10 + 1 + 20 bytes).
struct HlcText {
    buf: [u8; 54],
    len: usize,
}

impl HlcText {
    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    /// Decimal digits of `n`, zero-padded to `width`.
    fn push_number(&mut self, mut n: u64, width: usize) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for _ in (digits.len() - i)..width {
            self.push(b'0');
        }
        for &d in &digits[i..] {
            self.push(d);
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and dashes were written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// A timestamp string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid clock timestamp {0:?}: expected \"<millis>-<counter>-<node>\"")]
pub struct ParseHlcError(pub String);

impl FromStr for Hlc {
    type Err = ParseHlcError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseHlcError(s.to_owned());
        let mut parts = s.split('-');
        let (Some(m), Some(c), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !(digits(m) && digits(c) && digits(n)) {
            return Err(bad());
        }
        Ok(Hlc {
            millis: m.parse().map_err(|_| bad())?,
            counter: c.parse().map_err(|_| bad())?,
            node: n.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for Hlc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text().as_str())
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parsed from the text in place, without copying it into a String first.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Hlc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a clock timestamp string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Hlc, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_wall_clock_goes_back() {
        let mut c = Hlc::new(3);
        let a = c.tick(1_000);
        let b = c.tick(1_000);
        let d = c.tick(500);
        let e = c.tick(2_000);
        assert!(a < b && b < d && d < e);
        assert_eq!(d.millis, 1_000);
        assert_eq!(d.counter, 2);
        assert_eq!(
            e,
            Hlc {
                millis: 2_000,
                counter: 0,
                node: 3
            }
        );
    }

    #[test]
    fn observing_a_fast_remote_clock_orders_later_ticks_after_it() {
        let mut local = Hlc::new(1);
        local.tick(1_000);
        // A store whose clock runs ten minutes fast.
        let remote = Hlc {
            millis: 601_000,
            counter: 7,
            node: 2,
        };
        local.observe(remote, 1_001);
        let next = local.tick(1_002);
        assert!(next > remote);
        assert_eq!(next.millis, 601_000);
        assert_eq!(next.counter, 9);
    }

    #[test]
    fn the_string_form_round_trips_and_sorts_like_the_value() {
        let a = Hlc {
            millis: 1_733_240_000_000,
            counter: 12,
            node: 4,
        };
        let b = Hlc {
            millis: 1_733_240_000_000,
            counter: 13,
            node: 1,
        };
        assert_eq!(a.to_string(), "1733240000000-00012-4");
        assert_eq!(a.to_string().parse::<Hlc>().unwrap(), a);
        assert!(a.to_string() < b.to_string());
        assert!("12-3".parse::<Hlc>().is_err());
        assert!("1-2-3-4".parse::<Hlc>().is_err());
        assert!("a-2-3".parse::<Hlc>().is_err());
        assert!("-1-2-3".parse::<Hlc>().is_err());
        assert_eq!(Hlc::default().to_string(), "0000000000000-00000-0");
        let widest = Hlc {
            millis: u64::MAX,
            counter: u32::MAX,
            node: u64::MAX,
        };
        assert_eq!(widest.to_string().parse::<Hlc>().unwrap(), widest);
    }

    proptest::proptest! {
        /// The hand-written form is the padded format, for every timestamp.
        #[test]
        fn the_string_form_is_the_padded_format(millis: u64, counter: u32, node: u64) {
            let h = Hlc { millis, counter, node };
            let expected = format!("{millis:013}-{counter:05}-{node}");
            proptest::prop_assert_eq!(h.to_string(), expected.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&h).unwrap(), format!("\"{expected}\""));
        }
    }
}
