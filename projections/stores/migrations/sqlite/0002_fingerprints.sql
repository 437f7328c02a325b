-- Beside each file position: a digest of the file's bytes before it, so that a
-- file rewritten in place is told from one that was appended to.
CREATE TABLE fingerprints (
    consumer TEXT NOT NULL, source TEXT NOT NULL, partition INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (consumer, source, partition)
);
