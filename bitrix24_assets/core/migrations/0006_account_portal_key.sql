-- One account per portal and company. Running `accounts add` twice used to make a second account for
-- the same portal; both synced and every employee appeared twice. An account is identified by its
-- portal: the inbound webhook's host and user id (`https://<portal>/rest/<user id>/<secret>/`), or for
-- an OAuth account the portal's member_id, else its domain. Accounts without such credentials (other
-- providers, an account holding only an application token) have no key and never match another.
--
-- The key is a stored generated column, so these functions must stay as they are: a different rule
-- needs a new migration that rebuilds the column. The unique index on (company_id, provider,
-- portal_key) is not created here but by core.ensure_account_identity() on every migrate, so a Core
-- that already holds duplicates keeps migrating (the index is left out and migrate names the accounts
-- to remove) and gets the index on the first migrate after they are gone.

-- Host of a URL or bare domain, compared case-insensitively: lower case, without user info, a
-- trailing dot or a default port (80, 443). NULL when there is none.
create or replace function core.portal_host(p_url text)
returns text
language sql immutable parallel safe
set search_path = ''
as $$
    select nullif(pg_catalog.regexp_replace(
        pg_catalog.lower((pg_catalog.regexp_match(
            pg_catalog.btrim(p_url), '^(?:[a-z][a-z0-9+.-]*://)?(?:[^/?#@\s]*@)?([^/?#\s]+)', 'i'))[1]),
        '\.?(:(80|443))?$', ''), '');
$$;

create or replace function core.account_portal_key(p_provider text, p_credentials jsonb)
returns text
language sql immutable parallel safe
set search_path = ''
as $$
    select case
        when p_provider is null or p_credentials is null then null
        when w.m is not null and core.portal_host(w.m[1]) is not null
            then 'webhook:' || core.portal_host(w.m[1]) || '/' || w.m[2]
        when nullif(pg_catalog.btrim(p_credentials ->> 'member_id'), '') is not null
            then 'member:' || pg_catalog.lower(pg_catalog.btrim(p_credentials ->> 'member_id'))
        when core.portal_host(coalesce(nullif(pg_catalog.btrim(p_credentials ->> 'domain'), ''),
                                       p_credentials ->> 'client_endpoint')) is not null
            then 'domain:' || core.portal_host(coalesce(nullif(pg_catalog.btrim(p_credentials ->> 'domain'), ''),
                                                        p_credentials ->> 'client_endpoint'))
    end
    from (select pg_catalog.regexp_match(
              p_credentials ->> 'webhook_url', '^\s*[a-z][a-z0-9+.-]*://([^/?#]+)/rest/([^/?#]+)/', 'i') as m) w;
$$;

alter table core.integration_accounts
    add column if not exists portal_key text
        generated always as (core.account_portal_key(provider, credentials)) stored;
