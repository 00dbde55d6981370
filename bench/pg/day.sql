-- One business day of the comic store (bench/pg/comicstore.sql), applied
-- in place, reproducibly: day N's changes depend only on N and the state.
--
--   psql -f bench/pg/day.sql          (advances store_clock by one day)
--
-- About 1% of the rows change, scattered over the tables the way a shop's
-- day scatters them: new customers and sign-ups, logins and loyalty points,
-- address edits and a few deletes, new releases and status changes,
-- inventory counts (the most updated table), new orders with their items,
-- payments and events, orders walking pending -> paid -> shipped ->
-- delivered, a few cancellations (items deleted, payment refunded), the
-- event log purged of rows older than 180 days; then the nightly VACUUM
-- ANALYZE, so tomorrow's rows land in freed slots mid-table.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
BEGIN;
UPDATE store_clock SET day = day + 1, now = now + interval '1 day';
SELECT day AS d, day * 1000 AS s, now AS today,
       (SELECT max(id) FROM customers) AS nc, (SELECT max(id) FROM addresses) AS na,
       (SELECT max(id) FROM issues) AS niss, (SELECT max(id) FROM series) AS nser,
       (SELECT max(id) FROM orders) AS nord, (SELECT max(id) FROM event_log) AS nev
FROM store_clock \gset
\set today '\'' :today '\'::timestamptz'

-- Sign-ups (0.1% of customers), each with a shipping address.
INSERT INTO customers (id, email, first_name, last_name, phone, created_at, last_login, loyalty_points, marketing_opt_in)
SELECT :nc + n, 'customer' || (:nc + n) || '@new.example', pick(:s + 1, n, ARRAY['Ana', 'Ben', 'Cy', 'Dee']),
       pick(:s + 2, n, ARRAY['Park', 'Lee', 'Costa', 'Berg']), '+1-555-' || lpad(rint(:s + 3, n, 0, 9999999)::text, 7, '0'),
       :today - interval '10 hours' + n * interval '7 seconds', :today - interval '9 hours', 0, rnd(:s + 4, n) < 0.5
FROM generate_series(1, (:nc / 1000)::integer) AS n;
INSERT INTO addresses (id, customer_id, kind, line1, city, postal_code, country, updated_at)
SELECT :na + n, :nc + n, 'shipping', rint(:s + 5, n, 1, 999) || ' New St', 'Springfield',
       lpad(rint(:s + 6, n, 0, 99999)::text, 5, '0'), 'US', :today
FROM generate_series(1, (:nc / 1000)::integer) AS n;

-- Logins and loyalty points (1.5% of customers), profile edits (0.05%).
UPDATE customers SET last_login = :today - rint(:s + 7, id, 0, 86000) * interval '1 second',
       loyalty_points = loyalty_points + rint(:s + 8, id, 1, 50)
WHERE id IN (SELECT rint(:s + 9, n, 1, :nc) FROM generate_series(1, (:nc * 15 / 1000)::integer) AS n);
UPDATE customers SET phone = '+1-555-' || lpad(rint(:s + 10, id, 0, 9999999)::text, 7, '0'),
       marketing_opt_in = NOT marketing_opt_in
WHERE id IN (SELECT rint(:s + 11, n, 1, :nc) FROM generate_series(1, (:nc / 2000)::integer) AS n);

-- Address edits (0.3%) and deletes (0.01%).
UPDATE addresses SET line2 = 'Suite ' || rint(:s + 12, id, 1, 99), updated_at = :today
WHERE id IN (SELECT rint(:s + 13, n, 1, :na) FROM generate_series(1, (:na * 3 / 1000)::integer) AS n);
DELETE FROM addresses WHERE kind = 'billing'
  AND id IN (SELECT rint(:s + 14, n, 1, :na) FROM generate_series(1, (:na / 10000)::integer + 1) AS n);

-- New releases (0.1% of issues, with inventory), status changes (0.05%),
-- a new series now and then.
INSERT INTO series (id, publisher, title, volume, start_year, status, genre, description)
SELECT :nser + n, 'Indie', initcap(words(:s + 15, n, 3)), 1, 2025, 'ongoing', 'sci-fi', words(:s + 16, n, 25)
FROM generate_series(1, (:nser / 500)::integer + 1) AS n;
INSERT INTO issues (id, series_id, issue_number, variant, title, release_date, cover_price, upc, writer, artist, page_count, status, description)
SELECT :niss + n, rint(:s + 17, n, 1, :nser), rint(:s + 18, n, 1, 300), 'A', initcap(words(:s + 19, n, 4)),
       (:today)::date, 4.99, lpad(rint(:s + 20, n, 0, 999999999)::text, 12, '7'), 'T. King', 'J. Lee', 32, 'available',
       words(:s + 21, n, 40)
FROM generate_series(1, (:niss / 1000)::integer) AS n;
INSERT INTO inventory (issue_id, condition, qty, location, updated_at)
SELECT :niss + n, 'NM', rint(:s + 22, n, 5, 40), 'new releases wall', :today
FROM generate_series(1, (:niss / 1000)::integer) AS n;
UPDATE issues SET status = pick(:s + 23, id, ARRAY['sold out', 'back order', 'available'])
WHERE id IN (SELECT rint(:s + 24, n, 1, :niss) FROM generate_series(1, (:niss / 2000)::integer) AS n);

-- Inventory counts: 5% of the rows (sales, restocks, recounts).
UPDATE inventory SET qty = greatest(0, qty + rint(:s + 25, issue_id, -3, 5)::integer), updated_at = :today
WHERE issue_id IN (SELECT rint(:s + 26, n, 1, :niss) FROM generate_series(1, (:niss * 5 / 100)::integer) AS n);

-- Orders walk through their states (recent orders only).
UPDATE orders SET status = CASE status WHEN 'pending' THEN 'paid' WHEN 'paid' THEN 'shipped' ELSE 'delivered' END,
       updated_at = :today
WHERE status IN ('pending', 'paid', 'shipped') AND rnd(:s + 27, id) < 0.6;
UPDATE payments p SET status = 'captured', captured_at = :today
FROM orders o WHERE o.id = p.order_id AND p.status = 'authorized' AND o.status <> 'pending';

-- A few cancellations (0.01% of orders): items deleted, payment refunded.
UPDATE orders SET status = 'cancelled', updated_at = :today,
       notes = coalesce(notes || ' ', '') || 'cancelled by customer service'
WHERE id IN (SELECT rint(:s + 28, n, 1, :nord) FROM generate_series(1, (:nord / 10000)::integer + 1) AS n)
  AND status <> 'cancelled';
DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE status = 'cancelled' AND updated_at = :today);
UPDATE payments SET status = 'refunded'
WHERE order_id IN (SELECT id FROM orders WHERE status = 'cancelled' AND updated_at = :today);

-- New orders (0.3% of orders) with items and payments.
INSERT INTO orders (id, customer_id, shipping_address_id, status, placed_at, updated_at, subtotal, tax, shipping_fee, total, channel)
SELECT :nord + n, c, a.id, 'pending', t, t, sub, round(sub * 0.08, 2), 4.99, sub + round(sub * 0.08, 2) + 4.99,
       pick(:s + 29, n, ARRAY['web', 'web', 'store', 'app'])
FROM (SELECT n, rint(:s + 30, n, 1, :nc) AS c, :today - interval '20 hours' + n * (interval '20 hours' / (:nord * 3 / 1000)) AS t,
             (rint(:s + 31, n, 300, 12000) / 100.0)::numeric(10, 2) AS sub
      FROM generate_series(1, (:nord * 3 / 1000)::integer) AS n) o
LEFT JOIN LATERAL (SELECT id FROM addresses WHERE customer_id = o.c ORDER BY id LIMIT 1) a ON true;
INSERT INTO order_items (order_id, issue_id, quantity, unit_price)
SELECT o.id, rint(:s + 32, o.id * 8 + k, 1, :niss), rint(:s + 33, o.id * 8 + k, 1, 3), 4.99
FROM orders o, generate_series(1, 4) AS k
WHERE o.id > :nord AND k <= rint(:s + 34, o.id, 1, 4);
INSERT INTO payments (order_id, provider, provider_ref, amount, status, created_at)
SELECT id, 'stripe', 'pay_' || md5('p' || id), total, 'authorized', placed_at FROM orders WHERE id > :nord ORDER BY id;

-- Events (0.6% of the log) and the purge of rows older than 180 days.
INSERT INTO event_log (at, customer_id, kind, payload)
SELECT :today - interval '1 day' + n * (interval '1 day' / (:nev * 6 / 1000)), rint(:s + 35, n, 1, :nc),
       pick(:s + 36, n, ARRAY['login', 'view', 'view', 'search', 'cart_add', 'checkout']),
       jsonb_build_object('ip', '10.1.' || rint(:s + 37, n, 0, 255) || '.1', 'issue', rint(:s + 38, n, 1, :niss), 'ua', 'Firefox')
FROM generate_series(1, (:nev * 6 / 1000)::integer) AS n;
DELETE FROM event_log WHERE at < :today - interval '180 days';

SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers)),
       setval(pg_get_serial_sequence('addresses', 'id'), (SELECT max(id) FROM addresses)),
       setval(pg_get_serial_sequence('series', 'id'), (SELECT max(id) FROM series)),
       setval(pg_get_serial_sequence('issues', 'id'), (SELECT max(id) FROM issues)),
       setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders)) \g /dev/null
COMMIT;
VACUUM ANALYZE;
