-- One row that readiness rewrites: a store that cannot take this write (a read-only file,
-- a full disk) is not ready, whatever a SELECT says.
-- depends: 0001_initial

CREATE TABLE store_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at INTEGER NOT NULL
);
INSERT INTO store_probe (id, probed_at) VALUES (1, 0);
