//! The data model shared by the engine and the hub: operations and documents.
//!
//! Rust names are English; the wire names are the specification's Spanish, renamed here by
//! serde and nowhere else.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::clock::Hlc;

/// A document's fields: a JSON object.
pub type Fields = Map<String, Value>;

/// A store (shop) id. Store `0` is the central office.
pub type StoreId = u64;

/// What an operation does to its document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Create the document with `datos`.
    #[serde(rename = "crear")]
    Create,
    /// Set the fields in `datos`; other fields stay as they are.
    #[serde(rename = "actualizar")]
    Update,
    /// Delete the document (the hub keeps a tombstone so pulls see it).
    #[serde(rename = "eliminar")]
    Delete,
    /// Add the integer deltas in `datos` to numeric fields (stock moves this way).
    #[serde(rename = "incrementar")]
    Increment,
}

impl OpKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "crear",
            OpKind::Update => "actualizar",
            OpKind::Delete => "eliminar",
            OpKind::Increment => "incrementar",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "crear" => OpKind::Create,
            "actualizar" => OpKind::Update,
            "eliminar" => OpKind::Delete,
            "incrementar" => OpKind::Increment,
            _ => return None,
        })
    }
}

/// Where an operation stands.
///
/// On the device an operation is `Pending` until the hub answers; the hub's answer is one of
/// the other states. An `Applied` operation leaves the device queue; the others stay, so the
/// POS can show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpStatus {
    /// Queued on the device, not yet answered by the hub.
    #[default]
    #[serde(rename = "pendiente")]
    Pending,
    /// Applied by the hub exactly once.
    #[serde(rename = "aplicada")]
    Applied,
    /// Accepted by the hub but waiting (for example for a document it refers to).
    #[serde(rename = "diferida")]
    Deferred,
    /// In conflict; waits for a rule or an admin.
    #[serde(rename = "conflicto")]
    Conflict,
    /// Refused by the hub; it will not be applied. `error` says why.
    #[serde(rename = "rechazada")]
    Rejected,
}

impl OpStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Pending => "pendiente",
            OpStatus::Applied => "aplicada",
            OpStatus::Deferred => "diferida",
            OpStatus::Conflict => "conflicto",
            OpStatus::Rejected => "rechazada",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pendiente" => OpStatus::Pending,
            "aplicada" => OpStatus::Applied,
            "diferida" => OpStatus::Deferred,
            "conflicto" => OpStatus::Conflict,
            "rechazada" => OpStatus::Rejected,
            _ => return None,
        })
    }
}

/// One queued change to one document: the unit that is synced exactly once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Made on the device; the idempotency key. A re-sent operation has the same id.
    pub id: Uuid,
    /// The store that made it.
    #[serde(rename = "tienda")]
    pub store: StoreId,
    /// The collection (`productos`, `ventas`, ...).
    #[serde(rename = "coleccion")]
    pub collection: String,
    /// The document id inside the collection.
    #[serde(rename = "objeto_id")]
    pub doc_id: String,
    /// What it does.
    #[serde(rename = "operacion")]
    pub kind: OpKind,
    /// The fields it sets, or for `Increment` the deltas.
    #[serde(rename = "datos", default)]
    pub data: Fields,
    /// The document version the store last saw (0: never seen). Conflict detection starts here.
    #[serde(rename = "version_base", default)]
    pub base_version: u64,
    /// The values the store last saw of the fields it changes (from its cache), so the hub can
    /// merge numeric fields by their deltas and show an admin both sides.
    #[serde(
        rename = "datos_base",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub base_data: Option<Fields>,
    /// When it was made, on the hybrid logical clock.
    #[serde(rename = "reloj")]
    pub clock: Hlc,
    /// Higher goes first.
    #[serde(rename = "prioridad", default)]
    pub priority: i32,
    /// Where it stands.
    #[serde(rename = "estado", default)]
    pub status: OpStatus,
    /// Whether it is in conflict (kept apart from `estado` because the specification filters on it).
    #[serde(rename = "tiene_conflicto", default)]
    pub has_conflict: bool,
    /// Delivery attempts so far.
    #[serde(rename = "intentos", default)]
    pub attempts: u32,
    /// The last error, if any.
    #[serde(default)]
    pub error: Option<String>,
    /// When it was made (RFC 3339).
    #[serde(rename = "fecha_creacion", default)]
    pub created_at: String,
    /// When the hub processed it (RFC 3339).
    #[serde(rename = "fecha_procesamiento", default)]
    pub processed_at: Option<String>,
    /// The device queue's sequence number: creation order on this device. Not sent to the hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Operation {
    /// The `(collection, id)` key of the document this operation changes.
    pub fn doc_key(&self) -> DocKey {
        DocKey::new(&self.collection, &self.doc_id)
    }
}

/// A document's identity: collection and id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocKey {
    /// The collection.
    pub collection: String,
    /// The id inside it.
    pub doc_id: String,
}

impl DocKey {
    /// Builds a key.
    pub fn new(collection: &str, doc_id: &str) -> Self {
        DocKey {
            collection: collection.to_owned(),
            doc_id: doc_id.to_owned(),
        }
    }

    /// One string for both parts, for stores that index a single key. The separator (U+001F)
    /// is refused in collection names, so the form is unambiguous.
    pub fn joined(&self) -> String {
        format!("{}\u{1f}{}", self.collection, self.doc_id)
    }
}

/// A document as the hub holds it, and as the device caches it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The collection.
    #[serde(rename = "coleccion")]
    pub collection: String,
    /// The id inside the collection.
    #[serde(rename = "objeto_id")]
    pub doc_id: String,
    /// Hub-assigned; grows by one with every applied change.
    pub version: u64,
    /// The fields (empty once deleted).
    #[serde(rename = "datos")]
    pub data: Fields,
    /// Whether it was deleted (a tombstone).
    #[serde(rename = "eliminado", default)]
    pub deleted: bool,
}

/// Formats Unix milliseconds as RFC 3339 in UTC (`2026-12-03T16:11:52.123Z`): whole seconds
/// have no fraction, and a fraction has no trailing zeros (`.12Z`), as the `time` crate writes
/// it. Past the year 9999 it is empty. Written out here rather than with `time`, whose
/// formatting machinery would cost the engine's wasm more than the arithmetic below.
pub fn rfc3339(unix_ms: u64) -> String {
    let days = unix_ms / 86_400_000;
    let ms_of_day = unix_ms % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        return String::new();
    }
    let secs = ms_of_day / 1000;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let ms = ms_of_day % 1000;
    if ms != 0 {
        let fraction = format!(".{ms:03}");
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Random bytes each [`time_ordered_ids`] id takes.
pub const ID_RANDOM_BYTES: usize = 8;

/// `random.len() / 8` operation ids made at `unix_ms`: UUIDs of version 7 (RFC 9562), the
/// time in their first 48 bits, then a 12-bit counter, then 62 random bits. The ids of one
/// call are strictly increasing (after 4,096 the counter rolls over into the next
/// millisecond, as RFC 9562 allows), and ids made in a later millisecond sort after them. That is what makes
/// them cheap to index: the hub's and IndexedDB's id indexes take a new id at their end
/// instead of at a random place, which keeps the hub's inserts as fast with a million
/// operations on record as with none.
pub fn time_ordered_ids(unix_ms: u64, random: &[u8]) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(random.len() / ID_RANDOM_BYTES);
    for (i, r) in random.chunks_exact(ID_RANDOM_BYTES).enumerate() {
        let rand = u64::from_be_bytes(r.try_into().unwrap_or_default());
        let rand = u128::from(rand) & ((1 << 62) - 1);
        let millis = u128::from(unix_ms + (i / 4096) as u64) & ((1 << 48) - 1);
        let counter = (i % 4096) as u128;
        // time (48 bits), version 7 (4), counter (12), variant 0b10 (2), random (62).
        ids.push(Uuid::from_u128(
            millis << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand,
        ));
    }
    ids
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_milliseconds_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_733_240_000_123), "2024-12-03T15:33:20.123Z");
        assert_eq!(rfc3339(1_733_240_000_120), "2024-12-03T15:33:20.12Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(253_402_300_800_000), "");
    }

    /// The `time` crate is the reference: the same text for any instant it can write.
    fn time_reference(unix_ms: u64) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_matches_the_time_crate(ms in 0u64..253_402_300_800_000) {
            proptest::prop_assert_eq!(rfc3339(ms), time_reference(ms));
        }

        #[test]
        fn rfc3339_matches_the_time_crate_near_now(ms in 1_600_000_000_000u64..1_900_000_000_000) {
            proptest::prop_assert_eq!(rfc3339(ms), time_reference(ms));
        }
    }

    #[test]
    fn ids_are_version_7_in_creation_order_and_carry_their_time() {
        let random: Vec<u8> = (0..5000 * ID_RANDOM_BYTES)
            .map(|i| (i * 7919 % 251) as u8)
            .collect();
        let ids = time_ordered_ids(1_733_240_000_123, &random);
        assert_eq!(ids.len(), 5000);
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(ids
            .iter()
            .all(|id| id.get_variant() == uuid::Variant::RFC4122));
        // Strictly increasing, as bytes and as text, past the counter's 4,096.
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.windows(2).all(|w| w[0].to_string() < w[1].to_string()));
        let millis = |id: &Uuid| {
            id.get_timestamp()
                .map(|t| t.to_unix())
                .map(|(s, n)| s * 1000 + u64::from(n) / 1_000_000)
        };
        assert_eq!(millis(&ids[0]), Some(1_733_240_000_123));
        assert_eq!(millis(&ids[4095]), Some(1_733_240_000_123));
        assert_eq!(millis(&ids[4096]), Some(1_733_240_000_124));
        // A later call's ids sort after these.
        let later = time_ordered_ids(1_733_240_000_125, &random[..ID_RANDOM_BYTES]);
        assert!(later[0] > ids[4999]);
        // The random bytes are in the id: two calls in one millisecond differ.
        let other: Vec<u8> = random.iter().map(|b| b ^ 0x5a).collect();
        assert_ne!(
            time_ordered_ids(5, &random[..8]),
            time_ordered_ids(5, &other[..8])
        );
        assert!(time_ordered_ids(5, &random[..7]).is_empty());
    }

    #[test]
    fn kinds_and_states_use_the_spanish_wire_names() {
        for k in [
            OpKind::Create,
            OpKind::Update,
            OpKind::Delete,
            OpKind::Increment,
        ] {
            assert_eq!(OpKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in [
            OpStatus::Pending,
            OpStatus::Applied,
            OpStatus::Deferred,
            OpStatus::Conflict,
            OpStatus::Rejected,
        ] {
            assert_eq!(OpStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(OpKind::parse("borrar"), None);
    }
}
