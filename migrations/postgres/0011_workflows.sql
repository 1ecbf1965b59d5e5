-- Workflows (ADR 0016): a DAG of jobs submitted in one call. A node whose parents have not
-- all succeeded is 'waiting'; waiting_on counts its parents not yet succeeded, and the
-- completion of a parent decrements it by an UPDATE of the child's row, so two parents
-- finishing at once serialise on that row lock and exactly one of them sees zero.
-- depends: 0007_schedules

CREATE TABLE workflows (
    id         uuid        PRIMARY KEY,
    tenant     text        NOT NULL,
    name       text        NOT NULL DEFAULT '',
    on_failure text        NOT NULL,  -- 'cancel' | 'wait': what a dead-lettered node does
    created_at timestamptz NOT NULL
);
CREATE INDEX workflows_tenant ON workflows (tenant, created_at);

ALTER TABLE jobs
    ADD COLUMN workflow_id  uuid REFERENCES workflows (id),
    ADD COLUMN workflow_key text,
    ADD COLUMN waiting_on   integer NOT NULL DEFAULT 0;
ALTER TABLE jobs DROP CONSTRAINT jobs_state_known;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_known CHECK (state IN
    ('waiting', 'scheduled', 'queued', 'running', 'succeeded', 'dead', 'cancelled', 'expired'));
-- GetWorkflow and CancelWorkflow: every node of a workflow.
CREATE INDEX jobs_workflow ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;

-- One row per edge; the primary key serves "children of this parent" (a completion), the
-- second index "parents of this child" (a node's inputs). Edges go with their jobs.
CREATE TABLE job_dependencies (
    tenant      text NOT NULL,
    workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    parent_id   uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child_id    uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_dependencies_child ON job_dependencies (child_id);
