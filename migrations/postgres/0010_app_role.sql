-- The role the application logs in as (ADR 0019): rows, not schema. It may read and write
-- jobq's tables and use their sequences; LISTEN/NOTIFY and advisory locks need no grant.
-- It owns nothing and may create nothing, so DROP, ALTER and CREATE fail; migrations run
-- as the owner (RDS's master user), which is the role that applies this file.
--
-- Roles belong to the whole PostgreSQL cluster, databases do not: the role is created only
-- if another database of the cluster has not already. It logs in but has no password here:
-- `jq-server migrate` gives the login in JQ_DATABASE_APP_USER its password (from the app's
-- own secret), and Secrets Manager's alternating-users rotation keeps it thereafter.
-- depends: 0007_schedules

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jobq_app') THEN
        BEGIN
            CREATE ROLE jobq_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
        EXCEPTION WHEN duplicate_object THEN
            NULL;  -- another database of the cluster migrating at the same moment made it
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO jobq_app', current_database());
END
$$;

-- PostgreSQL 15 no longer lets PUBLIC create in schema public; said here too, so a database
-- upgraded from an older major version (or restored from one) holds the same line.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO jobq_app;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO jobq_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO jobq_app;
-- The migration tool's own tables: readiness reads them (pending migrations), nothing more.
DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE '%yoyo%' LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %I FROM jobq_app', t.tablename);
    END LOOP;
END
$$;

-- Tables and sequences that later migrations create (as the same owner) get the same grants.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO jobq_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO jobq_app;
