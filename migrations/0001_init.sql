-- The hub's schema, version 1.

-- Authoritative documents. `seq` is the commit sequence of the document's last change: the
-- pull cursor. Deleted documents stay as tombstones so pulls see the deletion.
CREATE TABLE documentos (
    coleccion   TEXT    NOT NULL,
    objeto_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    datos       TEXT    NOT NULL,
    eliminado   INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL,
    actualizado TEXT    NOT NULL,
    PRIMARY KEY (coleccion, objeto_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX documentos_seq ON documentos (seq);
CREATE INDEX documentos_coleccion_seq ON documentos (coleccion, seq);

-- The last commit sequence issued.
CREATE TABLE secuencia (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    valor INTEGER NOT NULL
);
INSERT INTO secuencia (id, valor) VALUES (1, 0);

-- Every operation the hub received (ColaSincronizacion), with the answer it gave. The answer
-- is written in the same transaction that applied the operation; `huella` (a SHA-256 of the
-- operation's content) tells a re-sent operation from a different one reusing its id.
CREATE TABLE operaciones (
    id                  TEXT    PRIMARY KEY,
    tienda              INTEGER NOT NULL,
    coleccion           TEXT    NOT NULL,
    objeto_id           TEXT    NOT NULL,
    operacion           TEXT    NOT NULL,
    datos               TEXT    NOT NULL,
    version_base        INTEGER NOT NULL,
    reloj               TEXT    NOT NULL,
    prioridad           INTEGER NOT NULL,
    estado              TEXT    NOT NULL,
    tiene_conflicto     INTEGER NOT NULL DEFAULT 0,
    intentos            INTEGER NOT NULL DEFAULT 1,
    error               TEXT,
    codigo              TEXT,
    version             INTEGER,
    huella              TEXT    NOT NULL,
    registro            INTEGER NOT NULL,
    fecha_creacion      TEXT    NOT NULL,
    fecha_recepcion     TEXT    NOT NULL,
    fecha_procesamiento TEXT
);
CREATE INDEX operaciones_tienda_estado ON operaciones (tienda, estado);
CREATE INDEX operaciones_estado ON operaciones (estado);
CREATE INDEX operaciones_conflicto ON operaciones (tiene_conflicto);

-- Sync history (RegistroSincronizacion): one row per push.
CREATE TABLE registros (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tienda       INTEGER NOT NULL,
    tipo         TEXT    NOT NULL,
    fecha_inicio TEXT    NOT NULL,
    fecha_fin    TEXT    NOT NULL,
    duracion_ms  INTEGER NOT NULL,
    recibidas    INTEGER NOT NULL,
    aplicadas    INTEGER NOT NULL,
    duplicadas   INTEGER NOT NULL,
    diferidas    INTEGER NOT NULL,
    conflictos   INTEGER NOT NULL,
    rechazadas   INTEGER NOT NULL
);
CREATE INDEX registros_tienda ON registros (tienda, id);
