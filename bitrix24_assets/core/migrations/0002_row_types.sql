-- Input row types for the merges. Both backends stage a batch into a temp table "OF" these
-- types (Postgres: COPY; Supabase: jsonb_populate_recordset inside the RPC function), then run
-- the same merge function. "ord" is the row's position in the batch: the last row of a
-- bitrix_id wins when a batch carries duplicates.
do $$
begin
    if to_regtype('core.employee_input') is null then
        create type core.employee_input as (
            ord bigint,
            bitrix_id text,
            email text,
            full_name text,
            first_name text,
            last_name text,
            position text,
            phone text,
            is_active boolean,
            departments jsonb,
            metadata jsonb
        );
    end if;
    if to_regtype('core.task_input') is null then
        create type core.task_input as (
            ord bigint,
            bitrix_id text,
            title text,
            description text,
            status text,
            status_code integer,
            priority text,
            deadline timestamptz,
            start_date_plan timestamptz,
            end_date_plan timestamptz,
            closed_at timestamptz,
            created_at_source timestamptz,
            changed_at_source timestamptz,
            responsible_bitrix_id text,
            created_by_bitrix_id text,
            group_id text,
            metadata jsonb
        );
    end if;
    if to_regtype('core.event_input') is null then
        create type core.event_input as (
            ord bigint,
            bitrix_id text,
            name text,
            description text,
            calendar_type text,
            owner_bitrix_id text,
            starts_at timestamptz,
            ends_at timestamptz,
            all_day boolean,
            location text,
            created_by_bitrix_id text,
            is_deleted boolean,
            changed_at_source timestamptz,
            metadata jsonb
        );
    end if;
end
$$;
