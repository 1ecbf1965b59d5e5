-- Fewer index entries per job (ADR 0032). A job's state changes twice after its insert, and
-- since `state` is in index predicates every change is a non-HOT update: each version of the
-- row gets an entry in every index whose predicate it meets. These indexes cost that on every
-- job and served little:
-- depends: 0011_workflows 0013_worker_task_queues

-- Nothing reads jobs by priority alone: leasing orders within jobs_leasable.
DROP INDEX jobs_priority;

-- ListJobs' created_after/created_before, and event retention by age: both tables are written
-- in time order, so a block-range index serves the range at a fraction of a B-tree's upkeep.
DROP INDEX jobs_created_at;
CREATE INDEX jobs_created_at ON jobs USING brin (created_at);
DROP INDEX job_events_at;
CREATE INDEX job_events_at ON job_events USING brin (at);

-- Queue depth (UNFINISHED_COUNTS) and dead letters read jobs by state within a queue; a
-- succeeded, cancelled or expired job is never looked up that way, and most jobs end so.
DROP INDEX jobs_state;
CREATE INDEX jobs_state ON jobs (tenant, queue, state)
    WHERE state IN ('waiting', 'scheduled', 'queued', 'running', 'dead');
