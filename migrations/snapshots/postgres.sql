CREATE TABLE public.api_keys (
    id text NOT NULL,
    secret_sha256 text NOT NULL,
    tenant text NOT NULL,
    roles text[] NOT NULL,
    queues text[],
    description text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone,
    revoked_at timestamp with time zone
);
CREATE TABLE public.job_dependencies (
    tenant text NOT NULL,
    workflow_id uuid NOT NULL,
    parent_id uuid NOT NULL,
    child_id uuid NOT NULL
);
CREATE TABLE public.job_events (
    seq bigint NOT NULL,
    id uuid NOT NULL,
    job_id uuid NOT NULL,
    queue text NOT NULL,
    kind text NOT NULL,
    from_state text,
    to_state text,
    attempt integer NOT NULL,
    at timestamp with time zone NOT NULL,
    details jsonb DEFAULT '{}'::jsonb NOT NULL,
    published_at timestamp with time zone,
    tenant text DEFAULT 'default'::text NOT NULL
);
ALTER TABLE public.job_events ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.job_events_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);
CREATE TABLE public.jobs (
    id uuid NOT NULL,
    queue text NOT NULL,
    tenant text DEFAULT 'default'::text NOT NULL,
    type text NOT NULL,
    payload text NOT NULL,
    state text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    attempt_base integer DEFAULT 0 NOT NULL,
    max_attempts integer NOT NULL,
    run_at timestamp with time zone NOT NULL,
    timeout interval,
    expires_at timestamp with time zone,
    lease_expires_at timestamp with time zone,
    worker_id text,
    idempotency_key text,
    result text,
    last_error text,
    progress double precision DEFAULT 0 NOT NULL,
    progress_message text DEFAULT ''::text NOT NULL,
    cancel_requested boolean DEFAULT false NOT NULL,
    correlation_id text DEFAULT ''::text NOT NULL,
    trace_context jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    workflow_id uuid,
    workflow_key text,
    waiting_on integer DEFAULT 0 NOT NULL,
    rate_key text,
    concurrency_key text,
    CONSTRAINT jobs_state_known CHECK ((state = ANY (ARRAY['waiting'::text, 'scheduled'::text, 'queued'::text, 'running'::text, 'succeeded'::text, 'dead'::text, 'cancelled'::text, 'expired'::text])))
);
CREATE TABLE public.queues (
    name text NOT NULL,
    tenant text DEFAULT 'default'::text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    weight integer DEFAULT 1 NOT NULL,
    max_attempts integer NOT NULL,
    backoff_base interval NOT NULL,
    backoff_max interval NOT NULL,
    lease_timeout interval NOT NULL,
    default_ttl interval,
    concurrency_limit integer DEFAULT 0 NOT NULL,
    retention interval NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    rate_limit double precision DEFAULT 0 NOT NULL,
    rate_burst integer DEFAULT 0 NOT NULL,
    key_rate_limit double precision DEFAULT 0 NOT NULL,
    key_rate_burst integer DEFAULT 0 NOT NULL,
    key_concurrency_limit integer DEFAULT 0 NOT NULL
);
CREATE TABLE public.schedule_runs (
    schedule_id uuid NOT NULL,
    fire_at timestamp with time zone NOT NULL,
    manual boolean NOT NULL,
    outcome text NOT NULL,
    job_id uuid,
    recorded_at timestamp with time zone NOT NULL
);
CREATE TABLE public.schedules (
    id uuid NOT NULL,
    tenant text NOT NULL,
    name text NOT NULL,
    cron text,
    every interval,
    time_zone text NOT NULL,
    job_type text NOT NULL,
    queue text NOT NULL,
    payload text NOT NULL,
    priority integer NOT NULL,
    max_attempts integer NOT NULL,
    overlap text NOT NULL,
    catch_up text NOT NULL,
    catch_up_window interval NOT NULL,
    jitter interval NOT NULL,
    start_at timestamp with time zone,
    end_at timestamp with time zone,
    paused boolean DEFAULT false NOT NULL,
    next_fire_at timestamp with time zone,
    buffered_fire_at timestamp with time zone,
    last_job_id uuid,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    CONSTRAINT schedules_check CHECK (((cron IS NULL) <> (every IS NULL)))
);
CREATE TABLE public.store_probe (
    id integer NOT NULL,
    probed_at timestamp with time zone NOT NULL,
    CONSTRAINT store_probe_id_check CHECK ((id = 1))
);
CREATE TABLE public.workers (
    id text NOT NULL,
    hostname text NOT NULL,
    queues text[] NOT NULL,
    task_types text[] DEFAULT '{}'::text[] NOT NULL,
    capacity integer NOT NULL,
    state text NOT NULL,
    started_at timestamp with time zone NOT NULL,
    last_heartbeat timestamp with time zone NOT NULL,
    tenant text DEFAULT 'default'::text NOT NULL,
    subject text DEFAULT ''::text NOT NULL,
    task_queues jsonb DEFAULT '{}'::jsonb NOT NULL
);
CREATE TABLE public.workflows (
    id uuid NOT NULL,
    tenant text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    on_failure text NOT NULL,
    created_at timestamp with time zone NOT NULL
);
ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.job_dependencies
    ADD CONSTRAINT job_dependencies_pkey PRIMARY KEY (parent_id, child_id);
ALTER TABLE ONLY public.job_events
    ADD CONSTRAINT job_events_id_key UNIQUE (id);
ALTER TABLE ONLY public.job_events
    ADD CONSTRAINT job_events_pkey PRIMARY KEY (seq);
ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.queues
    ADD CONSTRAINT queues_pkey PRIMARY KEY (tenant, name);
ALTER TABLE ONLY public.schedule_runs
    ADD CONSTRAINT schedule_runs_pkey PRIMARY KEY (schedule_id, fire_at, manual);
ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.schedules
    ADD CONSTRAINT schedules_tenant_name_key UNIQUE (tenant, name);
ALTER TABLE ONLY public.store_probe
    ADD CONSTRAINT store_probe_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.workers
    ADD CONSTRAINT workers_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.workflows
    ADD CONSTRAINT workflows_pkey PRIMARY KEY (id);
CREATE INDEX api_keys_tenant ON public.api_keys USING btree (tenant, created_at);
CREATE INDEX job_dependencies_child ON public.job_dependencies USING btree (child_id);
CREATE INDEX job_events_at ON public.job_events USING brin (at);
CREATE INDEX job_events_job ON public.job_events USING btree (job_id, seq);
CREATE INDEX job_events_unpublished ON public.job_events USING btree (seq) WHERE (published_at IS NULL);
CREATE INDEX jobs_created_at ON public.jobs USING brin (created_at);
CREATE INDEX jobs_finished ON public.jobs USING btree (finished_at) WHERE (finished_at IS NOT NULL);
CREATE UNIQUE INDEX jobs_idempotency ON public.jobs USING btree (tenant, queue, idempotency_key) WHERE (idempotency_key IS NOT NULL);
CREATE INDEX jobs_leasable ON public.jobs USING btree (tenant, queue, priority DESC, run_at, id) WHERE (state = 'queued'::text);
CREATE INDEX jobs_pending_expiry ON public.jobs USING btree (expires_at) WHERE ((state = ANY (ARRAY['scheduled'::text, 'queued'::text])) AND (expires_at IS NOT NULL));
CREATE INDEX jobs_running_key ON public.jobs USING btree (tenant, queue, concurrency_key) WHERE ((state = 'running'::text) AND (concurrency_key IS NOT NULL));
CREATE INDEX jobs_running_lease ON public.jobs USING btree (lease_expires_at) WHERE (state = 'running'::text);
CREATE INDEX jobs_scheduled ON public.jobs USING btree (run_at) WHERE (state = 'scheduled'::text);
CREATE INDEX jobs_state ON public.jobs USING btree (tenant, queue, state) WHERE (state = ANY (ARRAY['waiting'::text, 'scheduled'::text, 'queued'::text, 'running'::text, 'dead'::text]));
CREATE INDEX jobs_tenant ON public.jobs USING btree (tenant, id);
CREATE INDEX jobs_worker_id ON public.jobs USING btree (worker_id) WHERE (worker_id IS NOT NULL);
CREATE INDEX jobs_workflow ON public.jobs USING btree (workflow_id) WHERE (workflow_id IS NOT NULL);
CREATE INDEX schedules_due ON public.schedules USING btree (next_fire_at) WHERE (NOT paused);
CREATE INDEX workflows_tenant ON public.workflows USING btree (tenant, created_at);
ALTER TABLE ONLY public.job_dependencies
    ADD CONSTRAINT job_dependencies_child_id_fkey FOREIGN KEY (child_id) REFERENCES public.jobs(id) ON DELETE CASCADE;
ALTER TABLE ONLY public.job_dependencies
    ADD CONSTRAINT job_dependencies_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES public.jobs(id) ON DELETE CASCADE;
ALTER TABLE ONLY public.job_dependencies
    ADD CONSTRAINT job_dependencies_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES public.workflows(id) ON DELETE CASCADE;
ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_queue_fkey FOREIGN KEY (tenant, queue) REFERENCES public.queues(tenant, name);
ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES public.workflows(id);
ALTER TABLE ONLY public.schedule_runs
    ADD CONSTRAINT schedule_runs_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES public.schedules(id) ON DELETE CASCADE;
