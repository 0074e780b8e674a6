-- Triggers of the control plane: updated_at, one audit row per change of the controls (C6),
-- and approvals that can be decided only while pending.

create or replace function emergency_controls_touch() returns trigger
language plpgsql set search_path from current as $$
begin
  new.updated_at := clock_timestamp();
  return new;
end
$$;

drop trigger if exists emergency_controls_touch on emergency_controls;
create trigger emergency_controls_touch
  before update on emergency_controls
  for each row execute function emergency_controls_touch();

create or replace function emergency_controls_audit() returns trigger
language plpgsql set search_path from current as $$
begin
  insert into audit_logs (action, resource_type, resource_id, actor, metadata)
  values (
    'emergency_control_updated',
    'emergency_controls',
    new.id::text,
    new.updated_by,
    jsonb_build_object('old', to_jsonb(old), 'new', to_jsonb(new))
  );
  return null;
end
$$;

drop trigger if exists emergency_controls_audit on emergency_controls;
create trigger emergency_controls_audit
  after update on emergency_controls
  for each row execute function emergency_controls_audit();

create or replace function approval_queue_decide() returns trigger
language plpgsql set search_path from current as $$
begin
  if new.status is distinct from old.status then
    if old.status <> 'pending' then
      raise exception 'only a pending approval can change status'
        using errcode = 'check_violation',
              detail = format('approval %s is %s', old.id, old.status);
    end if;
    if new.decided_at is null then
      new.decided_at := clock_timestamp();
    end if;
  end if;
  return new;
end
$$;

drop trigger if exists approval_queue_decide on approval_queue;
create trigger approval_queue_decide
  before update on approval_queue
  for each row execute function approval_queue_decide();
