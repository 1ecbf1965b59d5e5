-- Workflows (ADR 0016): a DAG of jobs submitted in one call. waiting_on counts a waiting
-- node's parents not yet succeeded; the single writer serialises its decrements.
-- depends: 0007_schedules

CREATE TABLE workflows (
    id         TEXT    PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    on_failure TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX workflows_tenant ON workflows (tenant, created_at);

ALTER TABLE jobs ADD COLUMN workflow_id TEXT REFERENCES workflows (id);
ALTER TABLE jobs ADD COLUMN workflow_key TEXT;
ALTER TABLE jobs ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_workflow ON jobs (workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TABLE job_dependencies (
    tenant      TEXT NOT NULL,
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    parent_id   TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child_id    TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_dependencies_child ON job_dependencies (child_id);
