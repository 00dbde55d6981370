-- Roles the test database grants to. Roles are global (they live outside
-- any database), so this is idempotent: several tests share one cluster.
DO $$
DECLARE r text;
BEGIN
        FOREACH r IN ARRAY ARRAY['lb_reader', 'lb_writer', 'lb_owner', 'lb_noselect'] LOOP
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
                        EXECUTE format('CREATE ROLE %I LOGIN', r);
                END IF;
        END LOOP;
END $$;
