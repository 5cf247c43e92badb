//! Per-store configuration (`ConfiguracionSincronizacion`): what the hub applies when it
//! resolves a store's operations, and what the engine obeys when it syncs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::conflict::{FieldRule, Strategy};
use super::model::StoreId;
use super::protocol::{valid_collection, MAX_BATCH};

/// The most entries any one configuration map (or list) may hold.
pub const MAX_ENTRIES: usize = 200;

/// One store's sync configuration. Every field has a default, so a partial update is merged
/// onto the current configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The store.
    pub tienda: StoreId,
    /// How often the engine syncs while running, in milliseconds.
    #[serde(default = "defaults::interval")]
    pub intervalo_ms: u32,
    /// Priority per collection: higher drains first.
    #[serde(default = "defaults::priorities")]
    pub prioridades: BTreeMap<String, i32>,
    /// Conflict strategy per collection (collections not named use [`StoreConfig::strategy`]'s default).
    #[serde(default = "defaults::strategies")]
    pub estrategias: BTreeMap<String, Strategy>,
    /// Per-field rules for collections whose strategy is `campos`.
    #[serde(default = "defaults::rules")]
    pub reglas: BTreeMap<String, BTreeMap<String, FieldRule>>,
    /// Operations per push.
    #[serde(default = "defaults::batch")]
    pub tamano_lote: usize,
    /// Collections cached for offline use (empty: all). Default: the catalog, prices and
    /// customers; sales stay on the hub.
    #[serde(default = "defaults::cached")]
    pub colecciones_cache: Vec<String>,
    /// Attempts a deferred operation gets before it becomes an integrity conflict.
    #[serde(default = "defaults::attempts")]
    pub intentos_integridad: u32,
    /// References to check: collection → field → the collection it names.
    #[serde(default = "defaults::references")]
    pub referencias: BTreeMap<String, BTreeMap<String, String>>,
    /// Floors: collection → integer field → the lowest value it may take.
    #[serde(default = "defaults::floors")]
    pub minimos: BTreeMap<String, BTreeMap<String, i64>>,
    /// Raised by a full-resync order; an engine that sees it grow drops its cursor.
    #[serde(default)]
    pub resync: u64,
}

/// The part of a store's configuration the engine obeys, read from the hub's full
/// configuration (the other fields are the hub's business and are skipped unread, which keeps
/// the conflict rules' code out of the engine's wasm).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SyncSettings {
    /// How often the engine syncs while running, in milliseconds.
    #[serde(default = "defaults::interval")]
    pub intervalo_ms: u32,
    /// Priority per collection: higher drains first.
    #[serde(default)]
    pub prioridades: BTreeMap<String, i32>,
    /// Operations per push.
    #[serde(default = "defaults::batch")]
    pub tamano_lote: usize,
    /// Collections cached for offline use (empty: all).
    #[serde(default = "defaults::cached")]
    pub colecciones_cache: Vec<String>,
    /// Raised by a full-resync order.
    #[serde(default)]
    pub resync: u64,
}

impl Default for SyncSettings {
    /// What an engine obeys for a store whose configuration says nothing.
    fn default() -> Self {
        SyncSettings {
            intervalo_ms: defaults::interval(),
            prioridades: BTreeMap::new(),
            tamano_lote: defaults::batch(),
            colecciones_cache: defaults::cached(),
            resync: 0,
        }
    }
}

impl From<&StoreConfig> for SyncSettings {
    fn from(c: &StoreConfig) -> Self {
        SyncSettings {
            intervalo_ms: c.intervalo_ms,
            prioridades: c.prioridades.clone(),
            tamano_lote: c.tamano_lote,
            colecciones_cache: c.colecciones_cache.clone(),
            resync: c.resync,
        }
    }
}

mod defaults {
    use super::*;

    pub fn interval() -> u32 {
        10_000
    }
    pub fn priorities() -> BTreeMap<String, i32> {
        BTreeMap::from([("ventas".into(), 10), ("productos".into(), 5)])
    }
    pub fn strategies() -> BTreeMap<String, Strategy> {
        BTreeMap::from([
            ("productos".into(), Strategy::PerField),
            ("ventas".into(), Strategy::ServerWins),
            ("clientes".into(), Strategy::LastWriter),
        ])
    }
    pub fn rules() -> BTreeMap<String, BTreeMap<String, FieldRule>> {
        BTreeMap::from([(
            "productos".into(),
            BTreeMap::from([
                ("stock".into(), FieldRule::Sum),
                ("precio".into(), FieldRule::Server),
                ("nombre".into(), FieldRule::Latest),
            ]),
        )])
    }
    pub fn cached() -> Vec<String> {
        vec!["productos".into(), "precios".into(), "clientes".into()]
    }
    pub fn batch() -> usize {
        500
    }
    pub fn attempts() -> u32 {
        5
    }
    pub fn references() -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::from([(
            "ventas".into(),
            BTreeMap::from([("producto".into(), "productos".into())]),
        )])
    }
    pub fn floors() -> BTreeMap<String, BTreeMap<String, i64>> {
        BTreeMap::from([("productos".into(), BTreeMap::from([("stock".into(), 0)]))])
    }
}

impl StoreConfig {
    /// The defaults for a store.
    pub fn new(store: StoreId) -> Self {
        serde_json::from_value(serde_json::json!({ "tienda": store }))
            .expect("the defaults deserialize")
    }

    /// The strategy of a collection (`ultimo`, last writer wins, when not configured).
    pub fn strategy(&self, collection: &str) -> Strategy {
        self.estrategias
            .get(collection)
            .copied()
            .unwrap_or_default()
    }

    /// Checks the values; on failure, the messages by field name.
    pub fn validate(&self) -> Result<(), BTreeMap<String, Vec<String>>> {
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut bad = |field: &str, message: String| {
            errors.entry(field.to_owned()).or_default().push(message)
        };
        if !(100..=86_400_000).contains(&self.intervalo_ms) {
            bad(
                "intervalo_ms",
                "Ensure this value is between 100 and 86400000.".into(),
            );
        }
        if !(1..=MAX_BATCH).contains(&self.tamano_lote) {
            bad(
                "tamano_lote",
                format!("Ensure this value is between 1 and {MAX_BATCH}."),
            );
        }
        if !(1..=1000).contains(&self.intentos_integridad) {
            bad(
                "intentos_integridad",
                "Ensure this value is between 1 and 1000.".into(),
            );
        }
        let names = self
            .prioridades
            .keys()
            .map(|c| ("prioridades", c))
            .chain(self.estrategias.keys().map(|c| ("estrategias", c)))
            .chain(self.reglas.keys().map(|c| ("reglas", c)))
            .chain(
                self.colecciones_cache
                    .iter()
                    .map(|c| ("colecciones_cache", c)),
            )
            .chain(self.referencias.keys().map(|c| ("referencias", c)))
            .chain(
                self.referencias
                    .values()
                    .flat_map(|m| m.values())
                    .map(|c| ("referencias", c)),
            )
            .chain(self.minimos.keys().map(|c| ("minimos", c)));
        for (field, name) in names {
            if !valid_collection(name) {
                bad(field, format!("{name:?} is not a valid collection name."));
            }
        }
        let sizes = [
            ("prioridades", self.prioridades.len()),
            ("estrategias", self.estrategias.len()),
            (
                "reglas",
                self.reglas.len() + self.reglas.values().map(BTreeMap::len).sum::<usize>(),
            ),
            ("colecciones_cache", self.colecciones_cache.len()),
            (
                "referencias",
                self.referencias.len()
                    + self.referencias.values().map(BTreeMap::len).sum::<usize>(),
            ),
            (
                "minimos",
                self.minimos.len() + self.minimos.values().map(BTreeMap::len).sum::<usize>(),
            ),
        ];
        for (field, n) in sizes {
            if n > MAX_ENTRIES {
                bad(field, format!("At most {MAX_ENTRIES} entries."));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = self.colecciones_cache.iter().find(|c| !seen.insert(*c)) {
            bad("colecciones_cache", format!("{dup:?} is listed twice."));
        }
        // Collection names are free-form, but rules only act under the `campos` strategy: rules
        // for a collection with another strategy are a typo or a mistake either way.
        for collection in self.reglas.keys() {
            let strategy = self.strategy(collection);
            if strategy != Strategy::PerField {
                bad(
                    "reglas",
                    format!("Rules for {collection:?} apply only when its strategy is \"campos\"; it is {:?}.", serde_json::to_value(strategy).unwrap_or_default()),
                );
            }
        }
        for (collection, fields) in &self.referencias {
            for (field, target) in fields {
                if target == collection {
                    bad(
                        "referencias",
                        format!("{collection}.{field} refers to its own collection."),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_engine_reads_its_settings_from_the_hubs_full_configuration() {
        let mut c = StoreConfig::new(4);
        c.tamano_lote = 7;
        c.resync = 2;
        c.prioridades.insert("ventas".into(), 9);
        let json = serde_json::to_string(&c).unwrap();
        let read: SyncSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(read, SyncSettings::from(&c));
        assert_eq!(
            (read.tamano_lote, read.resync, read.prioridades["ventas"]),
            (7, 2, 9)
        );
        // A hub that sends fewer fields still gives usable settings.
        let partial: SyncSettings = serde_json::from_str(r#"{"tienda": 4}"#).unwrap();
        assert_eq!(partial.tamano_lote, defaults::batch());
        assert_eq!(partial.intervalo_ms, defaults::interval());
    }

    #[test]
    fn defaults_cover_the_demo_collections() {
        let c = StoreConfig::new(3);
        assert_eq!(c.tienda, 3);
        assert_eq!(c.strategy("productos"), Strategy::PerField);
        assert_eq!(c.strategy("clientes"), Strategy::LastWriter);
        assert_eq!(c.strategy("otra"), Strategy::LastWriter);
        assert_eq!(c.minimos["productos"]["stock"], 0);
        assert_eq!(c.referencias["ventas"]["producto"], "productos");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn invalid_values_name_their_field() {
        let mut c = StoreConfig::new(1);
        c.tamano_lote = 0;
        c.prioridades.insert("Bad/Name".into(), 1);
        let errors = c.validate().unwrap_err();
        assert!(errors["tamano_lote"][0].contains("between 1 and 1000"));
        assert!(errors["prioridades"][0].contains("Bad/Name"));
        let unknown = serde_json::from_value::<StoreConfig>(json!({"tienda": 1, "tamaño": 3}));
        assert!(unknown.unwrap_err().to_string().contains("unknown field"));
        let strategy = serde_json::from_value::<StoreConfig>(
            json!({"tienda": 1, "estrategias": {"productos": "gana"}}),
        );
        assert!(strategy.unwrap_err().to_string().contains("gana"));
    }
}
