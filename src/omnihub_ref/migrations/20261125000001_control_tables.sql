-- OmniHub control plane: emergency controls, approval queue and audit log (CONTRACT sections 2, 3).
-- Applied once per schema by omnidrill's migration runner; safe to re-run by hand as well.

create table if not exists emergency_controls (
  id uuid primary key default gen_random_uuid(),
  omnihub_kill_switch boolean not null default false,
  execution_safe_mode boolean not null default false,
  operator_takeover boolean not null default false,
  allowed_operations text[] not null default '{}',
  updated_at timestamptz not null default clock_timestamp(),
  updated_by text,
  reason text
);

create table if not exists approval_queue (
  id uuid primary key default gen_random_uuid(),
  user_id text not null,
  action text not null,
  amount_usd numeric not null check (amount_usd >= 0),
  risk_level text not null check (risk_level in ('low', 'medium', 'high', 'critical')),
  status text not null default 'pending'
    check (status in ('pending', 'approved', 'rejected', 'expired')),
  -- What was asked for (user_id, amount_usd, raw_tx hash, ...), so a retry can be compared with it.
  request jsonb not null default '{}'::jsonb,
  expires_at timestamptz not null default clock_timestamp() + interval '1 hour',
  created_at timestamptz not null default clock_timestamp(),
  decided_at timestamptz,
  decided_by text,
  executed_at timestamptz,
  result jsonb,
  reason text
);

create index if not exists approval_queue_pending_idx
  on approval_queue (expires_at) where status = 'pending';

create table if not exists audit_logs (
  id uuid primary key default gen_random_uuid(),
  -- Orders rows written within the same microsecond.
  seq bigint generated always as identity,
  action text not null,
  resource_type text not null,
  resource_id text,
  actor text,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default clock_timestamp()
);

create index if not exists audit_logs_resource_idx on audit_logs (resource_type, created_at);

-- Row-level security with no policies: only the service role (which bypasses RLS) reaches them.
alter table emergency_controls enable row level security;
alter table approval_queue enable row level security;
alter table audit_logs enable row level security;

-- The one row of controls, everything off.
insert into emergency_controls (id, updated_by)
values ('00000000-0000-0000-0000-000000000001', 'migration')
on conflict (id) do nothing;
