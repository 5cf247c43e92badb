-- Version 4: the operation log indexes only the operations lists look for.
-- Almost every operation ends applied, and every push wrote each one into two indexes over
-- all rows (`estado`, `tiene_conflicto`) that the lists use only to find the few others.
-- Partial indexes hold just those; queries on them repeat the index's condition.
DROP INDEX operaciones_estado;
DROP INDEX operaciones_conflicto;
CREATE INDEX operaciones_no_aplicadas ON operaciones (estado) WHERE estado <> 'aplicada';
CREATE INDEX operaciones_en_conflicto ON operaciones (tiene_conflicto) WHERE tiene_conflicto = 1;
