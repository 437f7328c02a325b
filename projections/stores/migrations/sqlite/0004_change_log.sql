-- The change log read by live subscribers (dispatch serve). AUTOINCREMENT: a
-- sequence is never reused, also after the newest rows were pruned.
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data BLOB NOT NULL,
    committed_us INTEGER NOT NULL
);
