-- The API roles of Supabase: `anon` (the public key) and `service_role` (the admin key, which
-- bypasses row-level security). The control API acts as service_role; anon may not touch the
-- control tables at all (no grants), and would see no row if it could (RLS, no policies).

-- Roles are cluster-wide: one migrator at a time, whatever the schema.
select pg_advisory_xact_lock(hashtext('omnihub_ref:api_roles'));

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  -- whoever runs the control API's connections must be able to act as them
  if not pg_has_role(current_user, 'service_role', 'member') then
    execute format('grant service_role to %I', current_user);
  end if;
  if not pg_has_role(current_user, 'anon', 'member') then
    execute format('grant anon to %I', current_user);
  end if;
  execute format('grant usage on schema %I to anon, service_role', current_schema());
end
$$;

grant select, insert, update on emergency_controls, approval_queue to service_role;
-- written by the audit trigger, as the role that changed the controls
grant select, insert on audit_logs to service_role;
revoke all on emergency_controls, approval_queue, audit_logs from anon;
