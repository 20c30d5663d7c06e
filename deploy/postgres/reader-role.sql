-- Give the SELECT-only role of the query API a password, creating the role if the first
-- migration has not yet. The migration creates it LOGIN without a password (fine for the
-- embedded server's trust auth; a networked server needs one). Idempotent: run it on every
-- deploy, before or after `reviewscore migrate`.
--
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 \
--        -v reader_role=reviewscore_reader -v reader_password="$READER_PASSWORD" -f reader-role.sql
--
-- psql variables are not expanded inside DO $$ blocks, hence format() + \gexec.
SELECT format('CREATE ROLE %I LOGIN', :'reader_role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader_role')
\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'reader_role', :'reader_password')
\gexec
