-- Departments, the fourth entity: the organisation tree of each account, and which employees
-- belong to which department as a relation (not only the ID list in employees.metadata).
-- Idempotent like 0001: tables IF NOT EXISTS, columns ADD COLUMN IF NOT EXISTS.

-- departments: one row per Bitrix24 department of one account. parent_id / head_id are resolved
-- by the merge (core.merge_departments) from the Bitrix ids, which are kept so a later merge can
-- resolve a head who arrives late. A department gone from a complete read gets is_deleted = true
-- (department.get returns only active departments); rows are never deleted by a sync.
-- No foreign keys to accounts, as tasks: deleting an account deletes its rows by trigger (below).
create table if not exists core.departments (
    id uuid primary key default gen_random_uuid(),
    company_id uuid not null,
    integration_account_id uuid not null,
    bitrix_id text not null
);
alter table core.departments
    add column if not exists name text,
    add column if not exists parent_bitrix_id text,
    add column if not exists parent_id uuid,
    add column if not exists head_bitrix_id text,
    add column if not exists head_id uuid,
    add column if not exists sort integer,
    add column if not exists is_deleted boolean not null default false,
    add column if not exists metadata jsonb not null default '{}'::jsonb,
    add column if not exists created_at timestamptz not null default now(),
    add column if not exists updated_at timestamptz not null default now();
create unique index if not exists departments_account_bitrix_key
    on core.departments (integration_account_id, bitrix_id);
create index if not exists departments_parent on core.departments (parent_id);

-- employee_departments: employee belongs to department (Bitrix24's UF_DEPARTMENT), for live
-- departments of the employee's own account. Maintained by the employees and departments merges
-- (core.link_employee_departments); an employee removed by the platform takes its rows with it.
create table if not exists core.employee_departments (
    integration_account_id uuid not null,
    employee_id uuid not null references core.employees (id) on delete cascade,
    department_id uuid not null references core.departments (id) on delete cascade,
    primary key (employee_id, department_id)
);
alter table core.employee_departments
    add column if not exists created_at timestamptz not null default now();
create index if not exists employee_departments_department on core.employee_departments (department_id);
create index if not exists employee_departments_account on core.employee_departments (integration_account_id);

-- Deleting an account removes its departments (and, by their foreign key, the memberships).
create or replace function core.delete_account_departments() returns trigger
language plpgsql set search_path = '' as $$
begin
    delete from core.departments d where d.integration_account_id = old.id;
    return old;
end
$$;
drop trigger if exists integration_accounts_delete_departments on core.integration_accounts;
create trigger integration_accounts_delete_departments after delete on core.integration_accounts
    for each row execute function core.delete_account_departments();
