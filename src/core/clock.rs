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
        write!(f, "{:013}-{:05}-{}", self.millis, self.counter, self.node)
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
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
    }
}
