-- Version 2: conflicts, deferral, per-field stamps and per-store configuration.

-- The version and clock of each field's last change: {"field": {"version": n, "clock": "..."}}.
ALTER TABLE documentos ADD COLUMN campos TEXT NOT NULL DEFAULT '{}';
-- The clock of the document's last change, sent with pulls so stores observe it.
ALTER TABLE documentos ADD COLUMN reloj TEXT;

-- The store's view of the fields it changed, sent by the engine.
ALTER TABLE operaciones ADD COLUMN datos_base TEXT;
-- For a deferred operation: the document ("coleccion\u001fobjeto_id") it waits for.
ALTER TABLE operaciones ADD COLUMN espera TEXT;
-- The conflict detail returned with the operation's answer (JSON), replayed on a re-send.
ALTER TABLE operaciones ADD COLUMN conflicto TEXT;
CREATE INDEX operaciones_espera ON operaciones (espera) WHERE espera IS NOT NULL;

-- Conflicts: detected on push, resolved by rule at once, or open until an admin resolves them.
CREATE TABLE conflictos (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    operacion_id     TEXT    NOT NULL,
    tienda           INTEGER NOT NULL,
    coleccion        TEXT    NOT NULL,
    objeto_id        TEXT    NOT NULL,
    tipo             TEXT    NOT NULL, -- campos | integridad | inventario
    campos           TEXT    NOT NULL, -- JSON list of the fields in conflict
    datos_servidor   TEXT    NOT NULL, -- the hub's document data when detected
    datos_tienda     TEXT    NOT NULL, -- the store's operation data
    estrategia       TEXT    NOT NULL,
    estado           TEXT    NOT NULL, -- abierto | resuelto
    resolucion       TEXT,             -- automatica | servidor | local | personalizado
    resultado        TEXT,             -- JSON: per-field outcomes of an automatic resolution
    resuelto_por     TEXT,
    fecha_creacion   TEXT    NOT NULL,
    fecha_resolucion TEXT,
    datos_antes      TEXT,
    datos_despues    TEXT
);
CREATE INDEX conflictos_estado ON conflictos (estado, tienda);
CREATE INDEX conflictos_operacion ON conflictos (operacion_id);
-- At most one open inventory conflict per document.
CREATE UNIQUE INDEX conflictos_inventario_abierto ON conflictos (coleccion, objeto_id)
    WHERE estado = 'abierto' AND tipo = 'inventario';

-- Per-store configuration (ConfiguracionSincronizacion), as JSON.
CREATE TABLE configuracion (
    tienda      INTEGER PRIMARY KEY,
    datos       TEXT    NOT NULL,
    actualizado TEXT    NOT NULL
);
