-- The change log read by live subscribers (dispatch serve). Sequences are taken
-- from the single change_head row, which the writing transaction keeps locked
-- until it commits: sequence order is commit order, so a reader that saw seq N
-- never later finds a smaller one appear.
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data BYTEA NOT NULL,
    committed_us BIGINT NOT NULL
);
CREATE TABLE change_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_head VALUES (1, 0);
