-- One row that readiness rewrites: a database that cannot take this write (a standby,
-- default_transaction_read_only, a full disk) is not ready, whatever a SELECT says.
-- depends: 0001_initial

CREATE TABLE store_probe (
    id        integer PRIMARY KEY CHECK (id = 1),
    probed_at timestamptz NOT NULL
);
INSERT INTO store_probe (id, probed_at) VALUES (1, 'epoch');
