-- A bigger table for parallel COPY, generated reproducibly:
--   psql -v rows=40000 -f bigtable.sql
-- About 150 bytes of COPY text per row; every value a pure function of id.
\if :{?rows}
\else
\set rows 40000
\endif
CREATE SCHEMA IF NOT EXISTS bulk;
CREATE TABLE bulk.ledger (
        id bigint PRIMARY KEY,
        account integer NOT NULL,
        amount numeric(14, 2) NOT NULL,
        booked_at timestamptz NOT NULL,
        memo text,
        digest bytea
);
INSERT INTO bulk.ledger
SELECT n, (n * 7919) % 1000, ((n * 104729) % 2000001 - 1000000) / 100.0,
       timestamptz '2024-01-01 00:00:00+00' + n * interval '17 seconds',
       'entry ' || n || ' ' || md5(n::text) || CASE WHEN n % 97 = 0 THEN E'\twith\ttabs\n' ELSE '' END,
       decode(md5('d' || n), 'hex')
FROM generate_series(1::bigint, :rows) AS n;
CREATE INDEX ledger_account ON bulk.ledger (account);
ANALYZE bulk.ledger;
