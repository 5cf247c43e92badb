-- Version 3: the document's version when a held conflict was detected, so a resolution that
-- keeps the store's data does not undo changes made to the document after that.
ALTER TABLE conflictos ADD COLUMN version_servidor INTEGER;
